"""The one conftest that owns the test environment, and the fixtures every folder shares.

When pytest imports this file (before any test module imports Airflow) it points Airflow at a
private, temporary AIRFLOW_HOME on SQLite whose DAGs folder holds the example DAGs and the test
DAGs, so tests never read or write ``~/airflow``. Each pytest-xdist worker is its own process and
imports this file itself: every worker has its own AIRFLOW_HOME, database and emulator.

Fixtures: ``airflow_db`` (Airflow's metadata database, once per session), ``airflow_db_template``
(a migrated database the suites running Airflow processes copy), ``hook_on`` (a hook on any
server), ``musicai``/``hook`` (the emulator as ``musicai_default``, a hook on it), ``input_url`` and
``make_context`` (an uploaded input, an execution context), ``wav_file`` (a small stereo WAV),
``allow_direct_execute`` (``operator.execute()`` outside the task runner). The reliability suites'
figures are printed at the end of the session (gathered from every xdist worker).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.helpers import FAST_RETRIES
from tests.helpers.airflow import FakeStateStore, FakeTI
from tests.helpers.audio import wav_bytes, write_wav
from tests.helpers.hooks import HookOn, set_connection
from tests.helpers.reliability import FIGURES, FULL, record, write_figures

pytest_plugins = ["tests.helpers.s3"]  # moto S3 fixtures, for the copy_results_to tests

if TYPE_CHECKING:
    from airflow_provider_musicai.hooks.musicai import MusicAIHook
    from airflow_provider_musicai.testing import EmulatorServer
    from tests.helpers.hostile import HostileServer

_REPO = Path(__file__).resolve().parents[1]
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="musicai-tests-home-"))
# The DAGs folder (Airflow 3's dag.test() needs each DAG in a bundle): the examples and the test DAGs.
(AIRFLOW_HOME / "dags").mkdir()
for _dag_file in [
    *(_REPO / "example_dags").glob("example_*.py"),
    *(_REPO / "tests/airflow/dags").glob("*.py"),
]:
    (AIRFLOW_HOME / "dags" / _dag_file.name).symlink_to(_dag_file)
os.environ.update(
    {
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME / 'airflow.db'}",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(AIRFLOW_HOME / "dags"),
        "AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES": "airflow.* airflow_provider_musicai.*",
        "MUSICAI_EXAMPLE_POLL_INTERVAL": "0.5",
    }
)


#: Markers of the tests that take tens of seconds (Airflow processes, load, long waits).
_LONG_RUNNING = ("integration", "crash", "chaos", "load", "slow")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the long tests first: under pytest-xdist they start on different workers at once instead
    of one of them ending the run alone (the order is otherwise kept; tests never depend on it)."""
    items.sort(key=lambda item: not any(item.get_closest_marker(name) for name in _LONG_RUNNING))


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove this process's AIRFLOW_HOME."""
    shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)


# -- fixtures --------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def airflow_db() -> str:
    """Airflow's metadata database, created once per session (per xdist worker)."""
    from airflow.utils import db

    db.initdb()
    return os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]


@pytest.fixture(scope="session")
def airflow_db_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the suites that run Airflow as processes keep a migrated SQLite database to copy
    (``deployed(..., db_template=...)``): one per run, shared by its xdist workers (the parent of
    their temporary folders), removed with pytest's temporary folders."""
    from tests.helpers.airflow import airflow_version

    base = tmp_path_factory.getbasetemp()
    shared = base.parent if "PYTEST_XDIST_WORKER" in os.environ else base
    return shared / f"airflow-{airflow_version()}-migrated.db"


@pytest.fixture
def allow_direct_execute(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let tests call ``operator.execute()`` directly, outside the task runner."""
    try:
        from airflow.sdk.bases.operator import ExecutorSafeguard
    except ImportError:  # Airflow 2
        from airflow.models.baseoperator import ExecutorSafeguard
    monkeypatch.setattr(ExecutorSafeguard, "test_mode", True)


@pytest.fixture
def hook_on(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[HookOn]:
    """The one way to get a hook on a server: ``hook_on(where=None, *, conn_id="musicai_test",
    key=None, raw_extra=None, **extra)`` points the connection ``conn_id`` at ``where`` (a URL, a
    hostile server, or the emulator when None, with its key unless ``key`` says otherwise) with quick
    retries overridden by ``extra`` (or the extra field ``raw_extra``, verbatim, for unreadable
    extras) and returns a hook on it, closed after the test. A test file that wants its own key or
    connection id overrides this fixture with a ``functools.partial`` of it."""
    from airflow_provider_musicai.hooks.musicai import MusicAIHook

    built: list[MusicAIHook] = []

    def build(
        where: str | HostileServer | EmulatorServer | None = None,
        *,
        conn_id: str = "musicai_test",
        key: str | None = None,
        raw_extra: str | None = None,
        **extra: Any,
    ) -> MusicAIHook:
        target = request.getfixturevalue("musicai_emulator") if where is None else where
        settings = {**FAST_RETRIES, **extra} if raw_extra is None else raw_extra
        set_connection(monkeypatch, conn_id, target, key=key, extra=settings)
        built.append(MusicAIHook(musicai_conn_id=conn_id))
        return built[-1]

    yield build
    for hook in built:
        hook.close()


@pytest.fixture
def musicai_extra() -> dict[str, Any]:
    """The extras of ``musicai_default`` on the emulator: quick retries (the Airflow suites, which
    count attempts per poll, override this with fewer)."""
    return FAST_RETRIES


@pytest.fixture
def musicai(
    musicai_emulator: EmulatorServer, monkeypatch: pytest.MonkeyPatch, musicai_extra: dict[str, Any]
) -> EmulatorServer:
    """The reset emulator, with ``musicai_default`` (the connection operators use unless told)
    pointing at it."""
    set_connection(monkeypatch, "musicai_default", musicai_emulator, extra=musicai_extra)
    return musicai_emulator


@pytest.fixture
def hook(musicai: EmulatorServer) -> Iterator[MusicAIHook]:
    """A hook on ``musicai_default``: the emulator, as the operators of the test would reach it."""
    from airflow_provider_musicai.hooks.musicai import MusicAIHook

    hook = MusicAIHook()
    yield hook
    hook.close()


@pytest.fixture
def input_url(hook: MusicAIHook, tmp_path: Path) -> Callable[..., str]:
    """Upload a small WAV (or ``data`` bytes) and return its ``downloadUrl`` sealed, as the upload
    operator returns it: what DAGs carry, so no test puts a signed URL into Airflow's database (the
    DAG tests scan it for signatures, and xdist workers share it between tests)."""

    def upload(data: bytes | None = None, name: str = "track.wav") -> str:
        path = tmp_path / name
        path.write_bytes(wav_bytes(0.5) if data is None else data)
        return str(hook.seal(hook.upload_file(str(path))))

    return upload


@pytest.fixture
def make_context() -> Callable[..., dict[str, Any]]:
    """``make_context(ti, store=None)``: a minimal execution context."""

    def build(ti: FakeTI | None = None, store: FakeStateStore | None = None) -> dict[str, Any]:
        context: dict[str, Any] = {"ti": ti or FakeTI()}
        if store is not None:
            context["task_state_store"] = store
        return context

    return build


@pytest.fixture
def wav_file(tmp_path: Path) -> Path:
    """One second of stereo WAV in a file."""
    return write_wav(tmp_path / "track.wav")


# -- the reliability suites' figures ---------------------------------------------------------------


def pytest_sessionfinish(session: pytest.Session) -> None:
    """On an xdist worker: hand the figures recorded here to the controller."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["musicai_figures"] = json.dumps(FIGURES, default=str)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """On the xdist controller: gather the figures a worker recorded."""
    figures = json.loads(getattr(node, "workeroutput", {}).get("musicai_figures", "{}"))
    for suite, values in figures.items():
        for name, value in values.items():
            record(suite, name, value)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the figures the suites recorded; merge them into MUSICAI_RELIABILITY_FIGURES."""
    if not FIGURES or hasattr(terminalreporter.config, "workeroutput"):
        return
    terminalreporter.section(f"reliability figures ({'full' if FULL else 'CI'} size)")
    for suite, figures in sorted(FIGURES.items()):
        terminalreporter.write_line(f"{suite}:")
        for name, value in sorted(figures.items()):
            terminalreporter.write_line(f"    {name}: {json.dumps(value, sort_keys=True, default=str)}")
    target = os.environ.get("MUSICAI_RELIABILITY_FIGURES")
    if target:
        write_figures(Path(target))
        terminalreporter.write_line(f"figures merged into {target}")
