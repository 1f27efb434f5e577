"""Downloading a job's results: which values are files, what each file is named, and where it goes.

Every URL-valued result is streamed by the hook's storage client (a fresh signed URL is read when
one expired) and written atomically under a safe name; the other values go to ``result.json``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from airflow_provider_musicai import references
from airflow_provider_musicai.copy_results import CUSTOM_STORAGE
from airflow_provider_musicai.exceptions import MusicAIAPIError, MusicAIError
from airflow_provider_musicai.hooks import _api
from airflow_provider_musicai.hooks._destination import (
    check_existing,
    overwrite_flag,
    resolve_destination,
    safe_filename,
    unique_names,
    write_json,
)
from airflow_provider_musicai.jobs import JobStatus, raise_if_failed
from airflow_provider_musicai.lineage import report_hook_lineage

if TYPE_CHECKING:
    from airflow_provider_musicai.hooks.musicai import MusicAIHook


def download_results(
    hook: MusicAIHook, job_or_id: str | Mapping[str, Any], destination: Any, *, overwrite: bool | str = True
) -> dict[str, str]:
    """Stream every URL-valued result of a SUCCEEDED job into ``destination`` with ``hook``: see
    :meth:`~airflow_provider_musicai.hooks.musicai.MusicAIHook.download_results`, which documents it."""
    replace = overwrite_flag(overwrite)
    job = dict(job_or_id) if isinstance(job_or_id, Mapping) else hook.get_job(job_or_id)
    if _has_references(job):  # an XCom copy: fetch the job for its real (and fresh) URLs
        job = hook.get_job(str(job["id"]))
    raise_if_failed(job)
    job_id = str(job.get("id", "?"))
    if job.get("status") != JobStatus.SUCCEEDED:
        raise MusicAIError(
            f"Music AI job {job_id} is {job.get('status')}: results exist only once it SUCCEEDED"
        )
    result = job.get("result") or {}
    if not isinstance(result, Mapping):
        raise MusicAIAPIError(
            "The job's result is not an object.", status_code=None, endpoint=_api.GET_JOB.label
        )
    copied = sorted(key for key, value in result.items() if value == CUSTOM_STORAGE)
    if copied:
        hook.log.info("Results %s of job %s were written to custom storage: not downloaded", copied, job_id)
    urls = {key: value for key, value in result.items() if references.is_url(value)}
    values = {key: value for key, value in result.items() if key not in urls and key not in copied}
    for key, url in urls.items():
        problem = references.url_problem(url)
        if problem is not None:
            raise MusicAIAPIError(
                f"Result {key!r} of job {job_id} is not a usable URL ({problem}).",
                status_code=None,
                endpoint=_api.GET_JOB.label,
            )
    target = resolve_destination(destination)
    names = unique_names((key, safe_filename(key, url)) for key, url in urls.items())
    check_existing(target, [*names.values(), *(["result.json"] if values else [])], replace, hook.log)
    written: dict[str, str] = {}
    for key, url in urls.items():
        with target.atomic_writer(names[key], overwrite=replace) as handle:
            hook.storage.download(
                url,
                handle,
                label=f"{key} of job {job_id}",
                fresh_url=None if job_id == "?" else _fresh_result_url(hook, job_id, key),
            )
        written[key] = target.location(names[key])
        hook.log.log(hook.item_log_level, "Result %r of job %s -> %s", key, job_id, written[key])
    if values:
        values_path = write_json(target, "result.json", values, overwrite=replace)
        written.update(dict.fromkeys(values, values_path))
        hook.log.log(
            hook.item_log_level, "Result values %s of job %s -> %s", sorted(values), job_id, values_path
        )
    report_hook_lineage(hook, outputs=dict.fromkeys(written.values()))
    return written


def _fresh_result_url(hook: MusicAIHook, job_id: str, key: str) -> Callable[[], str]:
    """Reads the job again for a fresh signed URL of result ``key`` (the one in hand expired)."""

    def fetch() -> str:
        result = hook.get_job(job_id).get("result")
        url = result.get(key) if isinstance(result, Mapping) else None
        if not references.is_url(url):
            raise MusicAIError(f"Music AI job {job_id} no longer has a URL result {key!r}")
        hook.log.info("The signed URL of result %r of job %s expired; using a fresh one", key, job_id)
        return str(url)

    return fetch


def _has_references(job: Mapping[str, Any]) -> bool:
    result = job.get("result")
    return isinstance(result, Mapping) and any(
        isinstance(value, str) and value.startswith(references.RESULT_SCHEME) for value in result.values()
    )
