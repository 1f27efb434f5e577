"""Command line: ``python -m airflow_provider_musicai.testing.emulator --port 8000``."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from .server import EmulatorRunner, ServerOptions


def _api_key(value: str) -> tuple[str, str]:
    key, sep, name = value.partition("=")
    if not key:
        raise argparse.ArgumentTypeError("an API key must not be empty")
    return key, name if sep and name else f"Application {key}"


def _setting(value: str) -> tuple[str, Any]:
    key, sep, raw = value.partition("=")
    if not key or not sep:
        raise argparse.ArgumentTypeError("expected KEY=JSON")
    try:
        return key, json.loads(raw)
    except ValueError:
        return key, raw


def _input_file(value: str) -> tuple[str, str]:
    scheme, sep, rest = value.partition("://")
    url_rest, eq, path = rest.rpartition("=")
    if not sep or not eq or not path:
        raise argparse.ArgumentTypeError("expected URL=PATH")
    return f"{scheme}://{url_rest}", path


def _workflows(path: Path | None) -> list[Any]:
    if path is None:
        return []
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise ValueError(f"cannot read the workflows file {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from exc
    data = data.get("workflows") if isinstance(data, dict) else data
    if not isinstance(data, list):
        raise ValueError(f'{path}: expected a JSON list of workflow declarations or {{"workflows": [...]}}')
    return data


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_musicai.testing.emulator",
        description="Serve a loopback emulator of the Music AI REST API until SIGINT/SIGTERM.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="API listener host (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="API listener port (default: a free port)")
    parser.add_argument("--storage-host", default=None, help="storage listener host (default: --host)")
    parser.add_argument(
        "--storage-port", type=int, default=0, help="storage listener port (default: a free port)"
    )
    parser.add_argument(
        "--api-key",
        action="append",
        type=_api_key,
        metavar="KEY[=App Name]",
        help="an API key and its application name (repeatable; default test-api-key and other-api-key)",
    )
    parser.add_argument("--queued-seconds", type=float, default=None, help="time a job stays QUEUED (0.5)")
    parser.add_argument(
        "--processing-seconds", type=float, default=None, help="time a job stays STARTED (1.0)"
    )
    parser.add_argument(
        "--https",
        action="store_true",
        help="serve HTTPS with a generated CA (its PEM path is printed) and results on their own origin",
    )
    parser.add_argument(
        "--separate-results", action="store_true", help="serve result files on their own origin"
    )
    parser.add_argument("--results-port", type=int, default=0, help="results listener port (free port)")
    parser.add_argument(
        "--workflows",
        type=Path,
        default=None,
        metavar="FILE.json",
        help='declare workflows: a JSON list of declarations, or {"workflows": [...]} (see the docs)',
    )
    parser.add_argument(
        "--input-file",
        action="append",
        type=_input_file,
        default=[],
        metavar="URL=PATH",
        help="serve an external input URL from a local file, e.g. https://music.ai/demo.ogg=demo.ogg",
    )
    parser.add_argument(
        "--set",
        action="append",
        type=_setting,
        default=[],
        metavar="KEY=JSON",
        help="a runtime config value, e.g. max_concurrent_jobs=2 or manual_clock=true (repeatable)",
    )
    parser.add_argument("--storage-dir", type=Path, default=None, help="blob folder (default: a temp folder)")
    parser.add_argument("--http", choices=("auto", "httptools", "h11"), default="auto", help="HTTP parser")
    parser.add_argument("--backlog", type=int, default=2048, help="listen backlog (2048)")
    parser.add_argument(
        "--keep-alive", type=float, default=30.0, help="idle keep-alive timeout in seconds (30)"
    )
    parser.add_argument(
        "--ready-file", type=Path, default=None, help="write the emulator's info as JSON here"
    )
    parser.add_argument("--exit-with-parent", action="store_true", help="stop when the parent process exits")
    parser.add_argument("--log-level", default="WARNING", help="Python log level (WARNING)")
    return parser.parse_args(argv)


async def _watch_parent(runner: EmulatorRunner) -> None:
    parent = os.getppid()
    while os.getppid() == parent:
        await asyncio.sleep(1.0)
    runner.request_stop()


async def _serve(runner: EmulatorRunner, ready_file: Path | None, exit_with_parent: bool) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, runner.request_stop)
    task = asyncio.ensure_future(runner.serve())
    watcher = asyncio.ensure_future(_watch_parent(runner)) if exit_with_parent else None
    while not runner.started.is_set() and not task.done():
        await asyncio.sleep(0.01)
    if runner.started.is_set():
        info = runner.info()
        keys = ", ".join(f"{key} ({name})" for key, name in info["api_keys"].items())
        if ready_file is not None:
            tmp = ready_file.with_name(ready_file.name + ".tmp")
            tmp.write_text(json.dumps({**info, "pid": os.getpid()}))
            os.replace(tmp, ready_file)
        line = f"Music AI emulator: API {info['api_url']}  storage {info['storage_url']}"
        if info["results_url"] != info["storage_url"]:
            line += f"  results {info['results_url']}"
        if info["ca_path"]:
            line += f"  CA {info['ca_path']}"
        line += f"  keys: {keys}\n"
        sys.stdout.write(line)
        sys.stdout.flush()
    try:
        await task
    finally:
        if watcher is not None:
            watcher.cancel()


def main(argv: list[str] | None = None) -> int:
    """Run the emulator until interrupted."""
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    options = ServerOptions(
        host=args.host,
        port=args.port,
        storage_host=args.storage_host,
        storage_port=args.storage_port,
        api_keys=dict(args.api_key) if args.api_key else None,
        queued_seconds=args.queued_seconds,
        processing_seconds=args.processing_seconds,
        storage_dir=args.storage_dir,
        http=args.http,
        backlog=args.backlog,
        keep_alive_seconds=args.keep_alive,
        config=dict(args.set),
        input_files=dict(args.input_file),
        https=args.https,
        separate_results=args.separate_results,
        results_port=args.results_port,
    )
    try:
        options.workflows = _workflows(args.workflows)
        runner = EmulatorRunner(options)
    except OSError as exc:
        sys.stderr.write(f"Music AI emulator: cannot listen: {exc}\n")
        return 1
    except ValueError as exc:
        sys.stderr.write(f"Music AI emulator: {exc}\n")
        return 2
    asyncio.run(_serve(runner, args.ready_file, args.exit_with_parent))
    return 0


if __name__ == "__main__":
    sys.exit(main())
