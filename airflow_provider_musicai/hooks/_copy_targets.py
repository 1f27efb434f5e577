"""``copyResultsTo``: where a job's outputs go, and the presigned PUT URLs the service writes them to.

The user names destinations (``s3://``, ``gs://``, an ``ObjectStoragePath`` or an already presigned
``https://`` URL); this module turns them into one destination per output, and presigns each one
through Airflow's own storage providers (imported only when used). The destination URIs are safe
for XCom, logs and rendered fields; the presigned URLs are credentials and only go into the request.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_musicai.exceptions import MusicAIConfigurationError
from airflow_provider_musicai.redaction import redact_url

#: The value the service reports for an output it wrote to ``copyResultsTo`` (musicai-sdk README).
CUSTOM_STORAGE = "[custom storage]"

#: How long a presigned PUT URL stays valid: the job must finish (queue included) within it.
DEFAULT_EXPIRES_IN = timedelta(hours=24)

_PRESIGNED = ("https", "http")
_EXTRAS = {"s3": "amazon", "gs": "google", "gcs": "google"}


@dataclasses.dataclass(frozen=True)
class CopyTarget:
    """One output's destination: ``uri`` (no credential in it) and the storage connection id."""

    output: str
    uri: str
    conn_id: str | None = None
    #: A presigned http(s) URL given as is (a credential: never shown, ``uri`` is its redacted form).
    presigned: str | None = None

    @property
    def scheme(self) -> str:
        return urlsplit(self.uri).scheme.lower()


def copy_targets(
    copy_results_to: Any, outputs: Sequence[str] | None = None, conn_id: str | None = None
) -> dict[str, CopyTarget]:
    """``{output: CopyTarget}`` from a mapping ``{output: destination}`` or a folder plus ``outputs``.

    A folder (a URL or ``ObjectStoragePath`` ending anywhere) gets one object per output, named after
    it: ``s3://bucket/stems/`` with ``outputs=["vocals"]`` writes ``s3://bucket/stems/vocals``.
    ``conn_id`` is the storage connection for string URLs that do not name one
    (``s3://conn_id@bucket/key``, as ``ObjectStoragePath`` spells it, does).
    """
    if copy_results_to is None or copy_results_to == {}:
        return {}
    if isinstance(copy_results_to, Mapping):
        if outputs:
            raise MusicAIConfigurationError(
                "copy_results_to is a mapping {output: destination}: do not pass outputs as well"
            )
        return {
            str(output): _target(str(output), destination, conn_id)
            for output, destination in copy_results_to.items()
        }
    if isinstance(outputs, str) or not outputs:
        raise MusicAIConfigurationError(
            "copy_results_to is a folder: name the outputs to write under it (a list, e.g. "
            "outputs=['vocals', 'accompaniment']), or pass a mapping {output: destination}"
        )
    folder = _uri_of(copy_results_to)
    if urlsplit(folder).scheme.lower() in _PRESIGNED:
        raise MusicAIConfigurationError(
            "copy_results_to: a presigned http(s) URL is one object, not a folder; pass a mapping "
            "{output: presigned URL}"
        )
    folder_conn = getattr(copy_results_to, "conn_id", None) or conn_id
    base = folder if folder.endswith("/") else folder + "/"
    return {str(output): _target(str(output), base + str(output), folder_conn) for output in outputs}


def _uri_of(destination: Any) -> str:
    """A string URL from a str or an ``ObjectStoragePath``-like object (``protocol``, ``bucket``, ``key``)."""
    if isinstance(destination, str):
        return destination.strip()
    protocol = getattr(destination, "protocol", None)
    bucket = getattr(destination, "bucket", None)
    if protocol and bucket is not None:
        return f"{protocol}://{bucket}/{getattr(destination, 'key', '') or ''}"
    raise MusicAIConfigurationError(
        f"copy_results_to destinations must be URLs or ObjectStoragePath, got {type(destination).__name__}"
    )


def _target(output: str, destination: Any, conn_id: str | None) -> CopyTarget:
    if not output:
        raise MusicAIConfigurationError("copy_results_to: an output name must not be empty")
    uri = _uri_of(destination)
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if scheme in _PRESIGNED:
        if not parts.hostname:
            raise MusicAIConfigurationError(f"copy_results_to[{output!r}]: {redact_url(uri)} has no host")
        return CopyTarget(output, redact_url(uri), None, presigned=uri)
    if scheme not in _EXTRAS:
        raise MusicAIConfigurationError(
            f"copy_results_to[{output!r}]: unsupported destination {scheme or 'without a scheme'!s}: "
            "use s3://bucket/key, gs://bucket/key, an ObjectStoragePath or a presigned https:// URL"
        )
    named_conn, _, bucket = parts.netloc.rpartition("@")
    key = parts.path.lstrip("/")
    if not bucket or not key or key.endswith("/"):
        raise MusicAIConfigurationError(
            f"copy_results_to[{output!r}]: {scheme}://{bucket}/{key} must name an object (bucket and key)"
        )
    conn = named_conn or getattr(destination, "conn_id", None) or conn_id
    return CopyTarget(output, f"{scheme}://{bucket}/{key}", conn)


def presign(target: CopyTarget, expires_in: timedelta = DEFAULT_EXPIRES_IN) -> str:
    """A URL the service can PUT ``target``'s output to (a credential: keep it out of logs and XCom)."""
    if target.presigned is not None:
        return target.presigned
    parts = urlsplit(target.uri)
    bucket, key = parts.netloc, parts.path.lstrip("/")
    if target.scheme == "s3":
        url = _presign_s3(bucket, key, target.conn_id, expires_in)
    else:
        url = _presign_gcs(bucket, key, target.conn_id, expires_in)
    if not isinstance(url, str) or urlsplit(url).scheme not in _PRESIGNED:
        raise MusicAIConfigurationError(
            f"copy_results_to[{target.output!r}]: could not presign a PUT URL for {target.uri} "
            f"(connection {target.conn_id or 'default'}); see the storage provider's log above"
        )
    return url


def presign_all(
    targets: Mapping[str, CopyTarget], expires_in: timedelta = DEFAULT_EXPIRES_IN
) -> dict[str, str]:
    """The ``copyResultsTo`` body field: ``{output: presigned PUT URL}``."""
    return {output: presign(target, expires_in) for output, target in targets.items()}


def destinations(targets: Mapping[str, CopyTarget]) -> dict[str, str]:
    """``{output: destination URI}``: what XCom, logs and lineage may show."""
    return {output: target.uri for output, target in targets.items()}


def with_destinations(job: Mapping[str, Any], targets: Mapping[str, CopyTarget]) -> dict[str, Any]:
    """``job`` with each ``[custom storage]`` result of a copied output replaced by its destination URI."""
    result = job.get("result")
    if not targets or not isinstance(result, Mapping):
        return dict(job)
    copied = {
        key: targets[key].uri if key in targets and value == CUSTOM_STORAGE else value
        for key, value in result.items()
    }
    return {**job, "result": copied}


def _missing_extra(scheme: str, exc: ImportError) -> MusicAIConfigurationError:
    extra = _EXTRAS[scheme]
    return MusicAIConfigurationError(
        # The command first: Airflow 3's log view does not wrap, and cut it off at the right edge.
        f"pip install 'airflow-provider-musicai[{extra}]': copy_results_to with {scheme}:// destinations "
        f"needs the {extra.capitalize()} provider ({exc})"
    )


def _presign_s3(bucket: str, key: str, conn_id: str | None, expires_in: timedelta) -> str | None:
    try:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook
    except ImportError as exc:
        raise _missing_extra("s3", exc) from None
    from botocore.config import Config

    hook = S3Hook(aws_conn_id=conn_id or "aws_default")
    # Signature V4: a query-string signature covers only the host (no ContentType param), so the
    # service may PUT with any Content-Type. Signature V2, which botocore may pick for presigning,
    # signs the Content-Type too: a PUT with one would be refused (SignatureDoesNotMatch).
    config = (hook.conn_config.botocore_config or Config()).merge(Config(signature_version="s3v4"))
    hook = S3Hook(aws_conn_id=conn_id or "aws_default", config=config)
    url: str | None = hook.generate_presigned_url(
        client_method="put_object",
        params={"Bucket": bucket, "Key": key},
        expires_in=int(expires_in.total_seconds()),
        http_method="PUT",
    )
    return url


def _presign_gcs(bucket: str, key: str, conn_id: str | None, expires_in: timedelta) -> str:
    try:
        from airflow.providers.google.cloud.hooks.gcs import GCSHook
    except ImportError as exc:
        raise _missing_extra("gs", exc) from None
    client = GCSHook(gcp_conn_id=conn_id or "google_cloud_default").get_conn()
    url: str = (
        client.bucket(bucket).blob(key).generate_signed_url(version="v4", expiration=expires_in, method="PUT")
    )
    return url
