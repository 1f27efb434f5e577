"""Signed URLs and the on-disk blob store behind the emulator's storage listener."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

#: Path prefix of every object on the storage listener.
STORAGE_PREFIX = "/storage/"
_KEY_RE = re.compile(r"^[0-9a-f]{32}(?:/[A-Za-z0-9][A-Za-z0-9._-]{0,127})?$")


class SignatureError(Exception):
    """A signed URL was refused, as Cloud Storage refuses it: HTTP ``status``, XML ``code``, ``details``.

    Cloud Storage answers 400 for an expired (``ExpiredToken``) or malformed (``MalformedSecurityHeader``)
    signed URL and 403 for a signature that does not match (see FIDELITY.md).
    """

    def __init__(self, code: str, message: str, *, status: int = 403, details: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.details = details


class UrlSigner:
    """Makes and checks ``?X-Expires=<unix>&X-Signature=<hmac-sha256(method, path, expiry)>`` URLs."""

    def __init__(self, secret: bytes, base_url: str, clock: Callable[[], float] = time.time) -> None:
        self._secret = secret
        self.base_url = base_url.rstrip("/")
        self._now = clock

    def _signature(self, method: str, path: str, expires: int) -> str:
        message = f"{method}\n{path}\n{expires}".encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def sign_url(self, method: str, key: str, ttl_seconds: float, now: float | None = None) -> str:
        """Return an absolute URL for ``method`` on object ``key``, valid for ``ttl_seconds``."""
        path = STORAGE_PREFIX + key
        expires = int((self._now() if now is None else now) + ttl_seconds)
        query = urlencode({"X-Expires": expires, "X-Signature": self._signature(method, path, expires)})
        return f"{self.base_url}{path}?{query}"

    def check(self, method: str, path: str, query: Mapping[str, str], now: float | None = None) -> None:
        """Raise :class:`SignatureError` unless ``query`` signs ``method`` (HEAD as GET) on ``path``."""
        method = "GET" if method == "HEAD" else method
        raw_expires, signature = query.get("X-Expires"), query.get("X-Signature")
        if not raw_expires or not signature:
            raise SignatureError("MissingSecurityHeader", "The URL is not signed (X-Expires/X-Signature).")
        if not (raw_expires.isascii() and raw_expires.isdigit() and len(raw_expires) <= 20):
            raise SignatureError(
                "MalformedSecurityHeader",
                "Your request has a malformed header.",
                status=400,
                details="X-Expires is not a Unix timestamp.",
            )
        expires = int(raw_expires)
        if not signature.isascii():  # compare_digest cannot compare non-ASCII text (was a 500)
            raise SignatureError("SignatureDoesNotMatch", "The request signature does not match.")
        if not hmac.compare_digest(signature, self._signature(method, path, expires)):
            for other in ("GET", "PUT"):
                if other != method and hmac.compare_digest(signature, self._signature(other, path, expires)):
                    raise SignatureError(
                        "SignatureDoesNotMatch",
                        f"The signature does not match: this URL is signed for {other}, not {method}.",
                    )
            raise SignatureError("SignatureDoesNotMatch", "The request signature does not match.")
        if (self._now() if now is None else now) >= expires:
            raise SignatureError(
                "ExpiredToken",
                "Invalid argument.",
                status=400,
                details="The provided token has expired. Request signature expired at: "
                f"{time.strftime('%Y-%m-%dT%H:%M:%S+00:00', time.gmtime(expires))}",
            )


def is_valid_key(key: str) -> bool:
    """Whether ``key`` has the shape of an object key made by :meth:`BlobStore.new_key`."""
    return bool(_KEY_RE.match(key))


@dataclass(frozen=True)
class Blob:
    """One stored object."""

    key: str
    path: Path
    size: int
    content_type: str
    created_at: float

    @property
    def etag(self) -> str:
        """A strong ETag unique to this version of the object."""
        return f'"{hashlib.sha256(f"{self.path.name}:{self.created_at}".encode()).hexdigest()[:32]}"'


class BlobStore:
    """Objects on disk under ``root``; writes go to a temp file renamed into place when complete."""

    def __init__(self, root: Path | None = None) -> None:
        self._owned = root is None
        self.root = Path(root) if root is not None else Path(_mkdtemp())
        self._objects = self.root / "objects"
        self._tmp = self.root / "tmp"
        self._lock = threading.Lock()
        self._blobs: dict[str, Blob] = {}
        self._generation = 0
        for folder in (self._objects, self._tmp):
            folder.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def new_key(filename: str | None = None) -> str:
        """Return a fresh object key, optionally ending with a file name (``<hex>/<filename>``)."""
        key = uuid.uuid4().hex
        return f"{key}/{filename}" if filename else key

    @property
    def generation(self) -> int:
        """Incremented by :meth:`reset`; a writer started before a reset does not commit."""
        return self._generation

    def temp_path(self) -> Path:
        """Return a fresh path for a temporary file in the store."""
        return self._tmp / uuid.uuid4().hex

    def commit(self, tmp: Path, key: str, content_type: str, generation: int | None = None) -> Blob | None:
        """Move a complete temporary file into place as ``key``; None (file dropped) if reset since."""
        path = self._objects / hashlib.sha256(key.encode()).hexdigest()
        with self._lock:
            if generation is not None and generation != self._generation:
                discard(tmp)
                return None
            os.replace(tmp, path)
            blob = Blob(key, path, path.stat().st_size, content_type, time.time())
            self._blobs[key] = blob
        return blob

    def put_bytes(self, key: str, data: bytes, content_type: str) -> Blob | None:
        """Store ``data`` as ``key``."""
        generation = self._generation
        tmp = self.temp_path()
        tmp.write_bytes(data)
        return self.commit(tmp, key, content_type, generation)

    def get(self, key: str) -> Blob | None:
        """Return the object ``key`` or None."""
        with self._lock:
            return self._blobs.get(key)

    def count(self) -> int:
        """Number of stored objects."""
        with self._lock:
            return len(self._blobs)

    def reset(self) -> None:
        """Delete every object (temporary files of writes in progress are dropped when they finish)."""
        with self._lock:
            self._generation += 1
            blobs, self._blobs = self._blobs, {}
        for blob in blobs.values():
            discard(blob.path)

    def close(self) -> None:
        """Delete everything; remove the root folder too if the store created it."""
        self.reset()
        if self._owned:
            shutil.rmtree(self.root, ignore_errors=True)


def discard(path: Path) -> None:
    """Delete ``path`` if it exists."""
    path.unlink(missing_ok=True)


def _mkdtemp() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="musicai-emulator-")
