"""What identifies a catalog track's content and its processing request, for incremental runs.

A track's *content identity* comes from what its store already knows, read from the folder's
listing (a list source costs one ``info`` call per track):

* S3: the object's ETag (``etag:<value>``). A single-part upload's ETag is the MD5 of the bytes; a
  multipart one (``<hex>-<parts>``) is a digest of the parts' MD5s, so the same bytes uploaded
  again with another part size get another ETag: the track is processed again (never the
  reverse: different bytes never share an ETag).
* Cloud Storage: the object's ``md5Hash`` (absent for composite objects), else its ``crc32c``.
* Anything else (local disk, most fsspec stores): size and modification time; when either
  differs from the recorded ones (or nothing is recorded) the file is read once and hashed
  (``sha256:<hex>``), so a file touched or rewritten with the same bytes is not processed again.

The *request digest* covers what shapes the results: workflow, ``workflow_params``, destination,
``copy_results_to`` and ``copy_outputs``. Changing any of them processes every track again.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

#: Bytes read at a time when a file is hashed.
HASH_BLOCK = 1 << 20


def request_digest(
    workflow: str,
    workflow_params: Mapping[str, Any],
    destination: Any,
    copy_results_to: Any,
    copy_outputs: Any,
) -> str:
    """16 hex digits naming the processing request (not the track)."""
    request = {
        "workflow": workflow,
        "workflow_params": workflow_params,
        "destination": None if destination is None else str(destination),
        "copy_results_to": None if copy_results_to is None else str(copy_results_to),
        "copy_outputs": None if copy_outputs is None else list(copy_outputs),
    }
    return hashlib.sha256(json.dumps(request, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _fs_and_path(source: Any) -> tuple[Any, str]:
    from airflow_provider_musicai.operators._catalog import _fs_and_root

    fs, path, _ = _fs_and_root(source)
    return fs, path


def listing_info(source: Any) -> dict[str, Any]:
    """The store's description of one file (a list source has no listing): one ``info`` call."""
    fs, path = _fs_and_path(source)
    return dict(fs.info(path))


def stored_identity(info: Mapping[str, Any]) -> str | None:
    """The content identity the store keeps for the object (ETag, MD5, CRC32C), or None."""
    etag = info.get("ETag") or info.get("etag")
    if etag:
        return "etag:" + str(etag).strip('"')
    if info.get("md5Hash"):
        return "md5:" + str(info["md5Hash"])
    if info.get("crc32c"):
        return "crc32c:" + str(info["crc32c"])
    return None


def file_hash(source: Any) -> str:
    """``sha256:<hex>`` of the file's bytes, read in 1 MiB blocks."""
    fs, path = _fs_and_path(source)
    digest = hashlib.sha256()
    with fs.open(path, "rb") as handle:
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def content_identity(
    source: Any, info: Mapping[str, Any] | None, previous: Mapping[str, Any] | None
) -> dict[str, Any]:
    """``{"content", "size", "mtime"}`` of a track; ``previous`` is its recorded state line, whose
    content is reused when size and mtime are unchanged (the file is then not read)."""
    info = listing_info(source) if info is None else info
    size = info.get("size")
    mtime = info.get("mtime")
    mtime = float(mtime) if isinstance(mtime, (int, float)) else None
    content = stored_identity(info)
    if content is None:
        unchanged = (
            previous is not None
            and mtime is not None
            and previous.get("size") == size
            and previous.get("mtime") == mtime
            and str(previous.get("content") or "").startswith("sha256:")
        )
        content = str(previous["content"]) if unchanged and previous else file_hash(source)
    return {"content": content, "size": size, "mtime": mtime}
