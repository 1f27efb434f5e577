"""OpenLineage for Music AI operators (optional extra ``[openlineage]``): datasets named by storage
URI or result reference, and a run facet with the Music AI job. Never a signed URL.

Imported only by the operators' ``get_openlineage_facets_on_complete``, which the OpenLineage
provider calls when it is installed.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from airflow_provider_musicai.locations import OBJECT_STORES, parse_location


def dataset_name(location: str) -> tuple[str, str] | None:
    """``(namespace, name)`` of a storage URI, local path or result reference; None for anything
    else (a signed URL, a sealed reference: they name no dataset and are credentials)."""
    text = str(location)
    if text.startswith("/"):
        return "file", text
    place = parse_location(text)
    if place.scheme == "file":
        return "file", place.path
    if place.scheme in OBJECT_STORES:
        return f"{place.scheme}://{place.bucket}", place.key
    if place.scheme == "musicai-result":
        return "musicai", place.bucket + place.path
    return None


def operator_lineage(inputs: Iterable[str], outputs: Iterable[str], job: dict[str, Any] | None = None) -> Any:
    """An ``OperatorLineage`` of ``inputs`` and ``outputs``, with a ``musicai`` run facet for ``job``
    (``{"jobId", "workflow", "application"}``) when one ran."""
    from airflow.providers.common.compat.openlineage.facet import Dataset
    from airflow.providers.openlineage.extractors import OperatorLineage

    def datasets(locations: Iterable[str]) -> list[Any]:
        names = dict.fromkeys(filter(None, map(dataset_name, locations)))
        return [Dataset(namespace=namespace, name=name) for namespace, name in names]

    run_facets = {"musicai": _run_facet(job)} if job else {}
    return OperatorLineage(inputs=datasets(inputs), outputs=datasets(outputs), run_facets=run_facets)


def _run_facet(job: dict[str, Any]) -> Any:
    import attrs
    from airflow.providers.common.compat.openlineage.facet import RunFacet

    @attrs.define
    class MusicAIRunFacet(RunFacet):  # type: ignore[misc]
        """The Music AI job behind a task: its id, workflow and the API key's application."""

        jobId: str
        workflow: str | None = None
        application: str | None = None

    return MusicAIRunFacet(
        jobId=str(job.get("jobId")), workflow=job.get("workflow"), application=job.get("application")
    )
