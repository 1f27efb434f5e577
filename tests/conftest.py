"""The one conftest that owns the test environment, and the fixtures every folder shares.

When pytest imports this file (before any test module imports Airflow) it points Airflow at a
private, temporary AIRFLOW_HOME on SQLite whose DAGs folder holds the example DAGs and the test
DAGs, so tests never read or write ``~/airflow``. Each pytest-xdist worker is its own process and
imports this file itself: every worker has its own AIRFLOW_HOME, database and emulator.

Fixtures: ``airflow_db`` (Airflow's metadata database, once per session), ``airflow_db_template``
(a migrated database the suites running Airflow processes copy), ``make_hook``/``hook``
(hooks on the session's emulator with quick retries), ``wav_file`` (a small stereo WAV),
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

from tests.helpers.audio import write_wav
from tests.helpers.reliability import FIGURES, FULL, record, write_figures

pytest_plugins = ["tests.helpers.s3"]  # moto S3 fixtures, for the copy_results_to tests

if TYPE_CHECKING:
    from airflow_provider_musicai.hooks.musicai import MusicAIHook
    from tests.helpers.hostile_hook import HookBuilder

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
def hook_on(monkeypatch: pytest.MonkeyPatch) -> Iterator[HookBuilder]:
    """Build hooks on connections to a URL or a hostile server (see tests/helpers/hostile_hook.py);
    a test file that wants its own key or connection id overrides this fixture with a partial."""
    from tests.helpers.hostile_hook import HookBuilder

    builder = HookBuilder(monkeypatch)
    yield builder
    builder.close()


@pytest.fixture
def make_hook(musicai_emulator: Any, hook_on: HookBuilder) -> Callable[..., MusicAIHook]:
    """Build hooks on connections to the emulator (``key`` and ``extra`` override the defaults)."""

    def build(conn_id: str = "musicai_test", key: str | None = None, **extra: Any) -> MusicAIHook:
        key = key or musicai_emulator.api_key
        return hook_on(musicai_emulator.api_url, conn_id=conn_id, key=key, **extra)

    return build


@pytest.fixture
def hook(make_hook: Callable[..., MusicAIHook]) -> MusicAIHook:
    return make_hook()


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
