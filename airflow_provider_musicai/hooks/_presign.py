"""Presigned PUT URLs for ``copyResultsTo``: each ``CopyTarget`` signed through Airflow's storage
providers (imported only when used). They are credentials: they go into the request only.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from urllib.parse import urlsplit

from airflow_provider_musicai.copy_results import CopyTarget
from airflow_provider_musicai.exceptions import MusicAIConfigurationError
from airflow_provider_musicai.locations import PRESIGNED, parse_location

#: How long a presigned PUT URL stays valid: the job must finish (queue included) within it.
DEFAULT_EXPIRES_IN = timedelta(hours=24)

_EXTRAS = {"s3": "amazon", "gs": "google", "gcs": "google"}


def presign(target: CopyTarget, expires_in: timedelta = DEFAULT_EXPIRES_IN) -> str:
    """A URL the service can PUT ``target``'s output to (a credential: keep it out of logs and XCom)."""
    if target.presigned is not None:
        return target.presigned
    place = parse_location(target.uri)
    if place.scheme == "s3":
        url = _presign_s3(place.bucket, place.key, target.conn_id, expires_in)
    else:
        url = _presign_gcs(place.bucket, place.key, target.conn_id, expires_in)
    if not isinstance(url, str) or urlsplit(url).scheme not in PRESIGNED:
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
