"""The end-to-end check of ``copy_results_to`` that every object store shares: a stems job copies its
outputs to a folder of the store, and each object there must be, byte for byte, what the emulator
serves for that output from its own storage (the same input run again without ``copy_results_to``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

STEMS = "music-ai/stems-vocals-accompaniment"
OUTPUTS = ("vocals", "accompaniments")


def assert_outputs_copied_whole(
    hook: Any,
    wav_file: Path,
    scratch: Path,
    folder: str,
    read_object: Callable[[str], bytes],
    **job_options: Any,
) -> None:
    """Copy a stems job's outputs to ``folder`` (a ``s3://``/``gs://`` URI ending in ``/``; ``job_options``
    go to ``create_job``, e.g. ``storage_conn_id``) and check that ``read_object(output)``, the bytes
    the store holds for that output, equals the emulator's own download of it (into ``scratch``)."""
    url = hook.upload_file(str(wav_file))
    copied = hook.create_job(
        "copied", STEMS, {"inputUrl": url}, copy_results_to=folder, copy_outputs=list(OUTPUTS), **job_options
    )
    job = hook.wait_for_job(copied, poll_interval=0.1, timeout=120)
    assert job["status"] == "SUCCEEDED", job
    assert set(job["result"].values()) == {"[custom storage]"}
    # The same input through Music AI's own storage: what the emulator serves for each output.
    plain = hook.wait_for_job(
        hook.create_job("plain", STEMS, {"inputUrl": url}), poll_interval=0.1, timeout=120
    )
    served = hook.download_results(plain, str(scratch / "served"))
    for name in OUTPUTS:
        assert read_object(name) == Path(served[name]).read_bytes(), name
