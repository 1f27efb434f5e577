"""What ``copy_results_to`` means: the one parser of its forms into a :class:`CopyTarget` per output.

A mapping ``{output: destination}`` or a folder plus the output names; a destination is an
``s3://``/``gs://`` URL (``s3://conn_id@bucket/key`` names its connection), an ``ObjectStoragePath``
or a presigned ``https://`` URL, read by :func:`~airflow_provider_musicai.locations.parse_location`.
The hook presigns the targets (:mod:`airflow_provider_musicai.hooks._presign`); their URIs are what
XCom, logs and lineage show.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_musicai.exceptions import MusicAIConfigurationError
from airflow_provider_musicai.locations import OBJECT_STORES, PRESIGNED, Location, parse_location
from airflow_provider_musicai.redaction import redact_url

#: The value the service reports for an output it wrote to ``copyResultsTo`` (musicai-sdk README).
CUSTOM_STORAGE = "[custom storage]"


@dataclasses.dataclass(frozen=True)
class CopyTarget:
    """One output's destination: ``uri`` (no credential in it) and the storage connection that
    presigns it, or the ``presigned`` URL it was given as (a credential: ``uri`` is its redacted form)."""

    output: str
    uri: str
    conn_id: str | None = None
    presigned: str | None = dataclasses.field(default=None, repr=False)


def copy_targets(
    copy_results_to: Any, outputs: Sequence[str] | None = None, conn_id: str | None = None
) -> dict[str, CopyTarget]:
    """``{output: CopyTarget}`` from a mapping ``{output: destination}`` or a folder plus ``outputs``.

    A destination is an ``s3://``/``gs://`` URL, an ``ObjectStoragePath``, a presigned ``https://``
    URL, or a :class:`CopyTarget` parsed already (taken as is: the operator parses once, and the
    hook presigns what the operator shows). A folder (a URL or ``ObjectStoragePath``) gets one
    object per output, named after it: ``s3://bucket/stems/`` with ``outputs=["vocals"]`` writes
    ``s3://bucket/stems/vocals``. ``conn_id`` is the storage connection for destinations that do
    not name one (``s3://conn_id@bucket/key``, as ``ObjectStoragePath`` spells it, does).
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
    folder = _location_of(copy_results_to)
    if folder.scheme in PRESIGNED:
        raise MusicAIConfigurationError(
            "copy_results_to: a presigned http(s) URL is one object, not a folder; pass a mapping "
            "{output: presigned URL}"
        )
    base = folder.text if folder.text.endswith("/") else folder.text + "/"
    return {
        str(output): _target(str(output), base + str(output), folder.conn_id or conn_id) for output in outputs
    }


def _location_of(destination: Any) -> Location:
    place: Location | None = parse_location(destination)
    if place is not None:
        return place
    raise MusicAIConfigurationError(
        f"copy_results_to destinations must be URLs or ObjectStoragePath, got {type(destination).__name__}"
    )


def _target(output: str, destination: Any, conn_id: str | None) -> CopyTarget:
    if isinstance(destination, CopyTarget):
        return destination
    if not output:
        raise MusicAIConfigurationError("copy_results_to: an output name must not be empty")
    place = _location_of(destination)
    if place.scheme in PRESIGNED:
        if not urlsplit(place.text).hostname:
            raise MusicAIConfigurationError(
                f"copy_results_to[{output!r}]: {redact_url(place.text)} has no host"
            )
        return CopyTarget(output, redact_url(place.text), None, presigned=place.text)
    if place.scheme not in OBJECT_STORES:
        raise MusicAIConfigurationError(
            f"copy_results_to[{output!r}]: unsupported destination {place.scheme or 'without a scheme'!s}: "
            "use s3://bucket/key, gs://bucket/key, an ObjectStoragePath or a presigned https:// URL"
        )
    object_uri = f"{place.scheme}://{place.bucket}/{place.key}"
    if not place.bucket or not place.key or place.key.endswith("/"):
        raise MusicAIConfigurationError(
            f"copy_results_to[{output!r}]: {object_uri} must name an object (bucket and key)"
        )
    return CopyTarget(output, object_uri, place.conn_id or conn_id)


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
