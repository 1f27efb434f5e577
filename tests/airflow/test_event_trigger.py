"""MusicAIJobEventTrigger against the emulator: one event per finished job, watermark across
restarts, one shared poll for sibling watchers (Airflow 3 only)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.helpers.airflow import airflow_major

pytestmark = pytest.mark.skipif(
    airflow_major() < 3, reason="asset watchers (BaseEventTrigger) need Airflow 3"
)

STEMS = "music-ai/stems-vocals-accompaniment"


class MemoryStore:
    """The asset state store's async accessors, kept in a dict (it outlives a trigger instance)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    async def aget(self, key: str, default: Any = None) -> Any:
        return json.loads(json.dumps(self.values.get(key, default)))

    async def aset(self, key: str, value: Any) -> None:
        self.values[key] = json.loads(json.dumps(value))


def trigger(store: MemoryStore | None = None, **kwargs: Any) -> Any:
    from airflow_provider_musicai.triggers.events import MusicAIJobEventTrigger

    made = MusicAIJobEventTrigger(poll_interval=0.2, **kwargs)
    made.asset_state_store = store
    return made


async def first_events(events: AsyncIterator[Any], count: int, within: float = 60) -> list[Any]:
    got: list[Any] = []

    async def take() -> None:
        async for event in events:
            got.append(event.payload)
            if len(got) == count:
                return

    await asyncio.wait_for(take(), within)
    return got


def finished_job(hook: Any, input_url: Any, **metadata: Any) -> str:
    job_id = str(hook.create_job("event test", STEMS, {"inputUrl": input_url()}, metadata))
    hook.wait_for_job(job_id, poll_interval=0.1, timeout=60)
    return job_id


async def two_new_jobs_fire(watcher: Any, hook: Any, input_url: Any) -> list[Any]:
    """The payloads of two jobs that finish after the watcher's first poll, oldest first."""
    events = watcher.run()
    # The first poll sets the watermark (now); jobs finishing afterwards fire, oldest first.
    await watcher._load_watermark()
    new = [finished_job(hook, input_url) for _ in range(2)]
    payloads = await first_events(events, 2)
    await events.aclose()
    assert [p["job_id"] for p in payloads] == new
    return payloads


def test_each_finished_job_fires_once_and_older_ones_do_not(hook: Any, input_url: Any) -> None:
    old = finished_job(hook, input_url)
    store = MemoryStore()

    payloads = asyncio.run(two_new_jobs_fire(trigger(store, workflow=STEMS), hook, input_url))
    assert old not in {p["job_id"] for p in payloads}
    for payload in payloads:
        assert payload["status"] == "SUCCEEDED" and payload["workflow"] == STEMS
        assert payload["result"]["vocals"] == f"musicai-result://{payload['job_id']}/vocals"
    assert "X-Signature" not in json.dumps(payloads)


@pytest.mark.musicai_config(workflow_shape="object")
def test_a_workflow_filter_matches_jobs_served_in_the_older_object_form(hook: Any, input_url: Any) -> None:
    stems_job = finished_job(hook, input_url)
    drums_job = str(hook.create_job("drums", "music-ai/isolate-drums", {"inputUrl": input_url()}))
    drums = hook.wait_for_job(drums_job, poll_interval=0.1, timeout=60)
    assert set(drums["workflow"]) == {"id", "name"}  # no slug to compare with
    watcher = trigger(workflow=STEMS, since="2000-01-01T00:00:00Z")
    payloads = asyncio.run(first_events(watcher.run(), 1))
    assert [p["job_id"] for p in payloads] == [stems_job]
    # The slug's id came from one GET /workflow: the other workflow's job does not match.
    assert watcher.matches(hook.get_job(stems_job)) and not watcher.matches(drums)


def test_since_fires_for_older_jobs(hook: Any, input_url: Any) -> None:
    old = finished_job(hook, input_url, tag="since")
    payloads = asyncio.run(
        first_events(trigger(metadata={"tag": "since"}, since="2000-01-01T00:00:00Z").run(), 1)
    )
    assert payloads[0]["job_id"] == old


def test_a_restarted_trigger_fires_no_job_twice(hook: Any, input_url: Any) -> None:
    store = MemoryStore()
    first = finished_job(hook, input_url, tag="restart")

    async def scenario() -> tuple[list[Any], list[Any], str]:
        before = await first_events(
            trigger(store, metadata={"tag": "restart"}, since="2000-01-01T00:00:00Z").run(), 1
        )
        # A new instance (a triggerer restart) reads the watermark from the asset's store.
        again = trigger(store, metadata={"tag": "restart"}, since="2000-01-01T00:00:00Z")
        events = again.run()
        later = finished_job(hook, input_url, tag="restart")
        after = await first_events(events, 1)
        await events.aclose()
        return before, after, later

    before, after, later = asyncio.run(scenario())
    assert [p["job_id"] for p in before] == [first]
    assert [p["job_id"] for p in after] == [later]
    assert store.values["musicai_job_event_watermark"]["ids"] == [later]


def test_watchers_share_one_listing_and_each_gets_its_jobs_once(hook: Any, input_url: Any) -> None:
    a = trigger(metadata={"team": "a"}, since="2000-01-01T00:00:00Z")
    b = trigger(metadata={"team": "b"}, since="2000-01-01T00:00:00Z")
    both = trigger(statuses=("SUCCEEDED", "FAILED"), since="2000-01-01T00:00:00Z")
    assert a.shared_stream_key() == b.shared_stream_key() == both.shared_stream_key()
    assert trigger(musicai_conn_id="other").shared_stream_key() != a.shared_stream_key()
    job_a = finished_job(hook, input_url, team="a")
    job_b = finished_job(hook, input_url, team="b")

    async def scenario() -> tuple[list[Any], list[Any]]:
        # One shared stream (as the triggerer's SharedStreamManager drives it), fanned out twice.
        stream = type(a).open_shared_stream(a.serialize()[1])
        listings = [await stream.__anext__() for _ in range(3)]
        await stream.aclose()

        async def replay() -> AsyncIterator[Any]:
            for listing in listings:
                yield listing

        got_a = [e.payload async for e in a.filter_shared_stream(replay())]
        got_b = [e.payload async for e in b.filter_shared_stream(replay())]
        return got_a, got_b

    got_a, got_b = asyncio.run(scenario())
    assert [p["job_id"] for p in got_a] == [job_a]
    assert [p["job_id"] for p in got_b] == [job_b]


def test_serialized_kwargs_name_the_watcher_not_its_state() -> None:
    from airflow_provider_musicai.triggers.events import MusicAIJobEventTrigger

    made = trigger(workflow=STEMS, batch_name="nightly", metadata={"k": 1}, watermark={"completed_at": "x"})
    path, kwargs = made.serialize()
    assert path == "airflow_provider_musicai.triggers.events.MusicAIJobEventTrigger"
    assert "watermark" not in kwargs
    assert MusicAIJobEventTrigger(**kwargs).serialize() == (path, kwargs)
    with pytest.raises(ValueError, match="statuses"):
        MusicAIJobEventTrigger(statuses=("QUEUED",))
    with pytest.raises(ValueError, match="since"):
        MusicAIJobEventTrigger(since="yesterday")


@pytest.mark.compat
def test_without_an_asset_state_store_the_triggerer_log_says_once_that_the_watermark_is_in_memory(
    hook: Any, input_url: Any, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    # Airflow before 3.3 has no asset state store: the watcher still fires, and says once what a
    # restart will forget (the trigger's attribute is None there, as trigger() sets it here).
    with caplog.at_level("WARNING"):
        asyncio.run(two_new_jobs_fire(trigger(None, workflow=STEMS), hook, input_url))
    # In the output (structlog's trigger logger) or in the log records (stdlib logging), whichever
    # the logger wrote to.
    said = "watermark is kept in memory only (this Airflow has no asset state store, which came with"
    assert max("".join(capfd.readouterr()).count(said), caplog.text.count(said)) == 1


def test_a_metadata_filter_still_wrapped_by_airflows_serialization_matches(hook: Any, input_url: Any) -> None:
    # Airflow 3.2 hands an asset watcher's dict kwargs to the trigger still in their serialization
    # envelope, keys spelled as the Encoding enum's names: the filter matched no job there.
    wrapped = {"Encoding.VAR": {"origin": "wrapped"}, "Encoding.TYPE": "dict"}
    watcher = trigger(MemoryStore(), metadata=wrapped)
    assert watcher.metadata == {"origin": "wrapped"}
    assert (
        trigger(None, metadata={"__var": {"origin": "wrapped"}, "__type": "dict"}).metadata
        == watcher.metadata
    )

    async def scenario() -> list[Any]:
        events = watcher.run()
        await watcher._load_watermark()
        job_id = str(hook.create_job("wrapped", STEMS, {"inputUrl": input_url()}, {"origin": "wrapped"}))
        hook.wait_for_job(job_id, poll_interval=0.1, timeout=60)
        payloads = await first_events(events, 1)
        await events.aclose()
        assert [p["job_id"] for p in payloads] == [job_id]
        return payloads

    asyncio.run(scenario())
