"""``copy_results_to``: destinations per output, presigned https targets sent as given, copied
outputs skipped by downloads, and the extra named when a storage provider is missing."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_musicai.copy_results import (
    CUSTOM_STORAGE,
    CopyTarget,
    copy_targets,
    destinations,
    with_destinations,
)
from airflow_provider_musicai.exceptions import MusicAIConfigurationError
from airflow_provider_musicai.hooks._presign import presign
from airflow_provider_musicai.lineage import static_outlets, storage_uri
from tests.helpers.hostile import HostileServer, Reply, Request

STEMS = "music-ai/stems-vocals-accompaniment"


def test_a_folder_gets_one_object_per_named_output() -> None:
    targets = copy_targets("s3://aws_moto@bucket/stems", ["vocals", "accompaniments"])
    assert destinations(targets) == {
        "vocals": "s3://bucket/stems/vocals",
        "accompaniments": "s3://bucket/stems/accompaniments",
    }
    assert {t.conn_id for t in targets.values()} == {"aws_moto"}


def test_a_mapping_names_each_destination_and_the_default_connection_fills_in() -> None:
    targets = copy_targets({"vocals": "gs://b/v.wav", "bpm": "s3://c@b2/bpm.txt"}, conn_id="fallback")
    assert targets["vocals"] == CopyTarget("vocals", "gs://b/v.wav", "fallback")
    assert targets["bpm"].conn_id == "c" and targets["bpm"].uri == "s3://b2/bpm.txt"


def test_an_object_storage_path_like_value_carries_its_connection() -> None:
    class Path_:
        protocol, bucket, key, conn_id = "s3", "bucket", "p/q", "aws_x"

    (target,) = copy_targets(Path_(), ["vocals"]).values()
    assert target == CopyTarget("vocals", "s3://bucket/p/q/vocals", "aws_x")


@pytest.mark.parametrize(
    ("value", "outputs", "words"),
    [
        ("s3://bucket/stems/", None, "name the outputs"),
        ("s3://bucket/stems/", "vocals", "name the outputs"),
        ({"vocals": "s3://b/v"}, ["vocals"], "do not pass outputs"),
        ({"vocals": "ftp://b/v"}, None, "unsupported destination ftp"),
        ({"vocals": "s3://bucket/"}, None, "must name an object"),
        ({"vocals": 3}, None, "must be URLs or ObjectStoragePath"),
        ("https://host/folder?sig=s3cret", ["vocals"], "one object, not a folder"),
        ({"vocals": "https:///v.wav?sig=s3cret"}, None, "has no host"),
        ({"vocals": "bucket/v.wav"}, None, "unsupported destination without a scheme"),
        ({"vocals": "/data/v.wav"}, None, "unsupported destination without a scheme"),
        ({"vocals": "file:///data/v.wav"}, None, "unsupported destination file"),
        ({"": "s3://b/v"}, None, "an output name must not be empty"),
    ],
    ids=[
        "folder-no-outputs",
        "outputs-a-string",
        "mapping-and-outputs",
        "ftp",
        "no-key",
        "int",
        "https-folder",
        "https-no-host",
        "no-scheme",
        "local-path",
        "file",
        "empty-output",
    ],
)
def test_bad_destinations_are_named(value: Any, outputs: Any, words: str) -> None:
    with pytest.raises(MusicAIConfigurationError, match=words) as info:
        copy_targets(value, outputs)
    assert "s3cret" not in str(info.value)


def test_a_presigned_url_is_shown_without_its_signature_and_sent_as_given() -> None:
    url = "https://bucket.example.com/v.wav?X-Amz-Signature=s3cret"
    (target,) = copy_targets({"vocals": url}).values()
    assert target.uri == "https://bucket.example.com/v.wav?<redacted>" and presign(target) == url


def test_a_missing_storage_provider_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "airflow.providers.google.cloud.hooks.gcs", None)
    monkeypatch.setitem(sys.modules, "airflow.providers.amazon.aws.hooks.s3", None)
    for uri, extra in (("gs://b/k", "google"), ("s3://b/k", "amazon")):
        (target,) = copy_targets({"vocals": uri}).values()
        with pytest.raises(MusicAIConfigurationError) as raised:
            presign(target)
        # The command comes first: Airflow 3's log view does not wrap, and cut it off at the right edge.
        assert str(raised.value).startswith(f"pip install 'airflow-provider-musicai[{extra}]': ")


def test_hints_come_first_in_long_configuration_errors() -> None:
    from airflow_provider_musicai.hooks._config import ConnectionConfig

    config = ConnectionConfig.from_connection(
        conn_id="c", host="http://api.example.com/v1", password="key", extra={}
    )
    with pytest.raises(MusicAIConfigurationError) as raised:
        config.check_transport_security()
    assert str(raised.value).startswith("Use an https:// host, or set the connection extra")


def test_destinations_are_trimmed_and_name_their_connection_in_either_spelling() -> None:
    class Path_:
        protocol, bucket, key, conn_id = "gs", "g", "out", "gcp_x"

    targets = copy_targets({"a": " S3://c@b/k.wav\n", "b": Path_()}, conn_id="fallback")
    assert targets == {"a": CopyTarget("a", "s3://b/k.wav", "c"), "b": CopyTarget("b", "gs://g/out", "gcp_x")}
    folder = copy_targets("gs://c@g/stems", ["vocals"], conn_id="fallback")
    assert folder == {"vocals": CopyTarget("vocals", "gs://g/stems/vocals", "c")}


def test_targets_parsed_already_are_taken_as_they_are() -> None:
    """The operator parses once and hands the hook its targets: they are presigned, not read again."""
    targets = copy_targets({"vocals": "https://h/v.wav?sig=s3cret", "bpm": "s3://c@b/bpm"})
    assert copy_targets(targets) == targets
    assert presign(copy_targets(targets)["vocals"]) == "https://h/v.wav?sig=s3cret"


def test_copied_outputs_show_their_destination() -> None:
    targets = copy_targets({"vocals": "s3://b/v.wav"})
    job = {"id": "j", "result": {"vocals": CUSTOM_STORAGE, "accompaniments": "musicai-result://j/acc"}}
    assert with_destinations(job, targets)["result"] == {
        "vocals": "s3://b/v.wav",
        "accompaniments": "musicai-result://j/acc",
    }


def test_static_destinations_become_assets_templated_or_presigned_do_not() -> None:
    assert [a.uri.rstrip("/") for a in static_outlets("s3://conn@bucket/stems/")] == ["s3://bucket/stems"]
    assert [a.uri for a in static_outlets({"v": "s3://b/v", "a": "gs://g/a"})] == ["s3://b/v", "gs://g/a"]
    assert static_outlets("s3://bucket/{{ ds }}/") == []
    assert static_outlets({"v": "https://h/v?sig=s3cret"}) == []
    assert storage_uri("https://h/v?sig=1") is None


class _StoragePath:
    """What the parsers read of an ``ObjectStoragePath``."""

    def __init__(
        self, protocol: str | None, bucket: str | None, key: str, conn_id: str | None = None
    ) -> None:
        self.protocol, self.bucket, self.key, self.conn_id = protocol, bucket, key, conn_id


@pytest.mark.parametrize(
    ("value", "uri"),
    [
        ("s3://conn@bucket/stems/", "s3://bucket/stems/"),
        (" gs://b/k.wav\n", "gs://b/k.wav"),
        ("GCS://b/k", "gcs://b/k"),
        ("s3://b/k?versionId=1#part", "s3://b/k"),
        ("file:///data/stems", "file:///data/stems"),
        (_StoragePath("s3", "bucket", "p/q", "aws_x"), "s3://bucket/p/q"),
        ("/data/stems", None),
        ("stems/vocals.wav", None),
        ("https://h/v?sig=1", None),
        ("ftp://h/v", None),
        ("s3://b/{{ ds }}", None),
        (_StoragePath("s3", None, "k"), None),
        (_StoragePath(None, "b", "k"), None),
        (3, None),
    ],
)
def test_storage_uri_names_storage_without_its_connection(value: Any, uri: str | None) -> None:
    assert storage_uri(value) == uri


@pytest.mark.parametrize(
    ("location", "name"),
    [
        ("/data/a b#1?.wav", ("file", "/data/a b#1?.wav")),
        ("file:///data/x.wav", ("file", "/data/x.wav")),
        ("s3://conn@b/k/x.wav", ("s3://b", "k/x.wav")),
        ("gs://b/x.wav", ("gs://b", "x.wav")),
        ("musicai-result://job-1/vocals", ("musicai", "job-1/vocals")),
        ("https://h/v.wav?X-Amz-Signature=s3cret", None),
        ("musicai-sealed:abc", None),
        ("relative/x.wav", None),
    ],
)
def test_openlineage_names_storage_local_files_and_results_never_a_signed_url(
    location: str, name: tuple[str, str] | None
) -> None:
    from airflow_provider_musicai._openlineage import dataset_name

    assert dataset_name(location) == name


def test_outputs_are_put_to_a_presigned_url_and_skipped_by_downloads(
    hook: Any, wav_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    with HostileServer(lambda request: Reply(200)) as server:
        target = server.url("/bucket/vocals.wav?X-Amz-Signature=s3cret")
        job_id = hook.create_job(
            "n", STEMS, {"inputUrl": hook.upload_file(str(wav_file))}, copy_results_to={"vocals": target}
        )
        job = hook.wait_for_job(job_id, poll_interval=0.1, timeout=120)
        (put,) = server.requests_to("PUT", "/bucket/vocals.wav")
    assert job["result"]["vocals"] == CUSTOM_STORAGE and put.body[:4] == b"RIFF"
    written = hook.download_results(job_id, str(tmp_path / "out"))
    assert set(written) == {"accompaniments"}
    assert not (tmp_path / "out" / "result.json").exists()
    assert "s3cret" not in caplog.text


def test_put_requests_carry_the_body_whole(hook: Any, wav_file: Path) -> None:
    bodies: list[Request] = []

    def answer(request: Request) -> Reply:
        bodies.append(request)
        return Reply(200)

    with HostileServer(answer) as server:
        job_id = hook.create_job(
            "n",
            STEMS,
            {"inputUrl": hook.upload_file(str(wav_file))},
            copy_results_to={"vocals": server.url("/v"), "accompaniments": server.url("/a")},
        )
        hook.wait_for_job(job_id, poll_interval=0.1, timeout=120)
    assert sorted(r.path for r in bodies) == ["/a", "/v"]
    assert all(int(r.headers["content-length"]) == len(r.body) > 44 for r in bodies)
