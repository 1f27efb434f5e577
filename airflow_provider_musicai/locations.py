"""What a storage location names: the one parser of URLs and ``ObjectStoragePath`` values.

:func:`parse_location` reads ``s3://conn_id@bucket/key``, ``gs://``, ``file://``, a presigned
``https://`` URL... or an ``ObjectStoragePath`` into a :class:`Location`, from which lineage's Asset
URIs, OpenLineage's dataset names and ``copy_results_to``'s targets
(:mod:`airflow_provider_musicai.copy_results`) all derive. Lineage imports it while DAG files are
parsed: it stays a few plain definitions (no dataclass, nothing of ours imported).
"""

from __future__ import annotations

from typing import Any, overload
from urllib.parse import urlsplit, urlunsplit

#: Schemes that name storage: an Asset each, and a ``conn_id@`` before the bucket names a connection.
STORAGE_SCHEMES = ("s3", "gs", "gcs", "file")
#: The object stores a ``copy_results_to`` destination may name (presigned through their provider).
OBJECT_STORES = ("s3", "gs", "gcs")
#: URLs presigned already: one object each, sent to the service as given.
PRESIGNED = ("https", "http")


class Location:
    """What a URL or ``ObjectStoragePath`` names: ``scheme`` (lower case; "" for a path), ``bucket``
    (bucket, container or host, without a storage URL's ``conn_id@``), ``path`` (the rest, as
    written), the ``conn_id`` it names, and ``text``, the URL as given (trimmed) or spelled from the
    ``ObjectStoragePath``: never shown, as a presigned URL's signature is in it."""

    __slots__ = ("bucket", "conn_id", "path", "scheme", "text")

    def __init__(self, scheme: str, bucket: str, path: str, conn_id: str | None, text: str) -> None:
        self.scheme, self.bucket, self.path, self.conn_id, self.text = scheme, bucket, path, conn_id, text

    @property
    def key(self) -> str:
        """The object key: ``path`` without its leading slashes."""
        return self.path.lstrip("/")

    @property
    def uri(self) -> str:
        """``scheme://bucket/path``: no connection, query or fragment (where a signature would be)."""
        return urlunsplit((self.scheme, self.bucket, self.path, "", ""))


@overload
def parse_location(value: str) -> Location: ...
@overload
def parse_location(value: Any) -> Location | None: ...
def parse_location(value: Any) -> Location | None:
    """The :class:`Location` of a string or an ``ObjectStoragePath``-like object (its ``protocol``,
    ``bucket``, ``key`` and ``conn_id``); None for anything else."""
    if isinstance(value, str):
        text, conn_id = value.strip(), None
    else:
        protocol, bucket = getattr(value, "protocol", None), getattr(value, "bucket", None)
        if not protocol or bucket is None:
            return None
        text = f"{protocol}://{bucket}/{getattr(value, 'key', '') or ''}"
        conn_id = getattr(value, "conn_id", None)
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    named, _, bucket = parts.netloc.rpartition("@") if scheme in STORAGE_SCHEMES else ("", "", parts.netloc)
    return Location(scheme, bucket, parts.path, named or conn_id or None, text)
