"""Stand-ins for signed URLs in XCom, resolved to fresh URLs only when a task needs them.

Signed URLs are credentials: whoever holds one reads (or writes) the object until it expires.
They must not sit in Airflow's metadata database, yet pipelines pass them from task to task
(an upload's ``downloadUrl`` becomes a job's ``inputUrl``; a stem becomes the next job's input).
So values that leave a task are replaced by:

* ``musicai-result://<job id>/<result key>`` for a job's URL results. Resolving it fetches the
  job again, which also yields a URL that has not expired.
* ``musicai-sealed:<token>`` for an upload's ``downloadUrl``, which the API cannot give again:
  the URL encrypted (Fernet) with a key derived from the connection's API key, so only a task
  holding that key can open it.

:func:`resolve_references` turns both back into URLs inside any JSON-like value (job params).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from airflow_provider_musicai.exceptions import MusicAIConfigurationError
from airflow_provider_musicai.redaction import redact_url

RESULT_SCHEME = "musicai-result://"
SEALED_PREFIX = "musicai-sealed:"


def result_reference(job_id: str, key: str) -> str:
    """The reference to result ``key`` of job ``job_id``."""
    return f"{RESULT_SCHEME}{quote(job_id, safe='')}/{quote(key, safe='')}"


def is_url(value: Any) -> bool:
    """True for an ``http(s)://`` string (a result or upload URL); schemes are case-insensitive."""
    return isinstance(value, str) and value[:8].lower().startswith(("http://", "https://"))


def url_problem(url: str) -> str | None:
    """Why ``url`` cannot be fetched (e.g. ``"invalid IPv6 address"``), or None if it can.

    The reason never quotes the URL: a signed URL's query string is a credential.
    """
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - parsed lazily: raises for a port that is not a number
    except ValueError as exc:
        reason = str(exc)  # about the host or port, never the query
        return reason if reason and "?" not in reason else "unparseable URL"
    if not parts.hostname:
        return "no host"
    return None


def public_job_document(job: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``job`` safe to store in XCom: URL results become result references."""
    public = dict(job)
    result = job.get("result")
    job_id = str(job.get("id", ""))
    if isinstance(result, Mapping) and job_id:
        public["result"] = {
            key: result_reference(job_id, str(key)) if is_url(value) else _without_signed_urls(value)
            for key, value in result.items()
        }
    elif result is not None:
        public["result"] = _without_signed_urls(result)
    params = job.get("workflowParams")
    if params is not None:
        public["workflowParams"] = _without_signed_urls(params)
    return public


def _without_signed_urls(value: Any) -> Any:
    """``value`` with every URL, however deeply nested, stripped of its query string (credential)."""
    if is_url(value):
        return redact_url(value)
    if isinstance(value, Mapping):
        return {key: _without_signed_urls(inner) for key, inner in value.items()}
    if isinstance(value, (list, tuple)):
        return [_without_signed_urls(inner) for inner in value]
    return value


def _fernet(api_key: str) -> Any:
    from cryptography.fernet import Fernet

    digest = hashlib.sha256(b"airflow-provider-musicai/seal/v1\0" + api_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def seal(url: str, api_key: str) -> str:
    """Encrypt ``url`` so that it can travel through XCom; see :func:`unseal`."""
    token: bytes = _fernet(api_key).encrypt(url.encode())
    return SEALED_PREFIX + token.decode()


def unseal(token: str, api_key: str) -> str:
    """The URL inside a ``musicai-sealed:`` token, or a clear error if this key did not seal it."""
    from cryptography.fernet import InvalidToken

    try:
        url: bytes = _fernet(api_key).decrypt(token.removeprefix(SEALED_PREFIX).encode())
    except (InvalidToken, ValueError):
        raise MusicAIConfigurationError(
            "A sealed Music AI upload URL could not be opened: it was sealed with another "
            "connection's API key, or it is corrupted"
        ) from None
    return url.decode()


def parse_result_reference(value: str) -> tuple[str, str]:
    """``(job id, result key)`` of a ``musicai-result://`` reference."""
    body = value.removeprefix(RESULT_SCHEME)
    job_id, _, key = body.partition("/")
    if not job_id or not key:
        raise MusicAIConfigurationError(
            f"Malformed Music AI result reference {value!r}: expected {RESULT_SCHEME}<job id>/<result key>"
        )
    return unquote(job_id), unquote(key)


def resolve_references(value: Any, api_key: str, fetch_job: Callable[[str], Mapping[str, Any]]) -> Any:
    """Replace every reference and sealed URL inside ``value`` (dicts, lists, strings) by its URL.

    Jobs are fetched once each, through ``fetch_job``.
    """
    jobs: dict[str, Mapping[str, Any]] = {}

    def resolve(item: Any) -> Any:
        if isinstance(item, Mapping):
            return {key: resolve(inner) for key, inner in item.items()}
        if isinstance(item, (list, tuple)):
            return [resolve(inner) for inner in item]
        if not isinstance(item, str):
            return item
        if item.startswith(SEALED_PREFIX):
            return unseal(item, api_key)
        if item.startswith(RESULT_SCHEME):
            job_id, key = parse_result_reference(item)
            if job_id not in jobs:
                jobs[job_id] = fetch_job(job_id)
            result = jobs[job_id].get("result")
            url = result.get(key) if isinstance(result, Mapping) else None
            if not is_url(url):
                known = sorted(result) if isinstance(result, Mapping) else []
                raise MusicAIConfigurationError(
                    f"Music AI job {job_id} has no URL result {key!r} (its status is "
                    f"{jobs[job_id].get('status')}; its results: {known})"
                )
            return url
        return item

    return resolve(value)
