"""PostgreSQL and Redis servers of the deployment suite: Debian's binaries, started on temporary data
directories and free loopback ports, stopped by their own process ids."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from airflow_provider_musicai.testing.emulator.control import stop_process
from tests.helpers.airflow import free_port


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL's ``bin`` folder."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def missing_services() -> list[str]:
    """The packages scripts/_services.sh would install."""
    missing = [] if postgres_bin() else ["postgresql"]
    return missing + ([] if shutil.which("redis-server") else ["redis-server"])


def _wait_port(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 60) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"server exited: {log.read_text(errors='replace')[-3000:]}"
        with socket.socket() as sock, contextlib.suppress(OSError):
            sock.settimeout(1)
            sock.connect(("127.0.0.1", port))
            return
        time.sleep(0.2)
    raise AssertionError(f"nothing listens on {port}: {log.read_text(errors='replace')[-3000:]}")


@contextmanager
def postgres_server(max_connections: int = 300) -> Iterator[str]:
    """A PostgreSQL server; yields the SQLAlchemy URL of its ``airflow`` database."""
    binaries = postgres_bin()
    assert binaries is not None
    root = Path(tempfile.mkdtemp(prefix="musicai-pg-"))
    # The server refuses to run as root: as root, it runs as the ``postgres`` user.
    user = "postgres" if os.geteuid() == 0 else None
    if user is not None:
        shutil.chown(root, user)
    data, log = root / "data", root / "server.log"
    try:
        subprocess.run(
            [binaries / "initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-sync"],
            user=user,
            check=True,
            capture_output=True,
        )
        port = free_port()
        with log.open("wb") as out:
            process = subprocess.Popen(
                [
                    binaries / "postgres",
                    "-D",
                    data,
                    "-p",
                    str(port),
                    "-k",
                    root,
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    f"max_connections={max_connections}",
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                ],
                user=user,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait_port(port, process, log)
            url = f"postgresql+psycopg2://postgres@127.0.0.1:{port}"
            import psycopg2

            deadline = time.monotonic() + 60
            while True:
                try:
                    connection = psycopg2.connect(url.replace("+psycopg2", "") + "/postgres")
                    break
                except psycopg2.OperationalError:  # still starting up
                    assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
                    time.sleep(0.5)
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute("CREATE DATABASE airflow")
            connection.close()
            yield f"{url}/airflow"
        finally:
            stop_process(process, grace=30)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextmanager
def redis_server() -> Iterator[str]:
    """A Redis server that keeps nothing on disk; yields its URL."""
    root = Path(tempfile.mkdtemp(prefix="musicai-redis-"))
    port = free_port()
    log = root / "server.log"
    try:
        with log.open("wb") as out:
            process = subprocess.Popen(
                [
                    "redis-server",
                    "--port",
                    str(port),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--daemonize",
                    "no",
                    "--dir",
                    str(root),
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait_port(port, process, log)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            stop_process(process, grace=30)
    finally:
        shutil.rmtree(root, ignore_errors=True)
