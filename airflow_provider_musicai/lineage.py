"""Lineage of Music AI tasks: Assets (Datasets on Airflow 2) and their events, hook-level lineage.

Everything here names storage by URI without credentials: a signed URL is never an asset, an
event's extra or a lineage entry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from airflow_provider_musicai.locations import STORAGE_SCHEMES, Location, parse_location


def asset_class() -> type[Any]:
    """``airflow.sdk.Asset`` on Airflow 3, ``airflow.datasets.Dataset`` on Airflow 2."""
    try:
        from airflow.sdk import Asset
    except ImportError:
        from airflow.datasets import Dataset

        dataset: type[Any] = Dataset
        return dataset
    asset: type[Any] = Asset
    return asset


def is_asset(outlet: Any) -> bool:
    """Whether ``outlet`` is an Asset (Dataset) whose events can carry an extra."""
    return isinstance(outlet, asset_class())


def storage_uri(destination: Any) -> str | None:
    """``s3://bucket/key`` for a storage URL or ``ObjectStoragePath`` (connection id dropped); None
    for anything that is not named storage (an http(s) URL is a signed URL: never an asset) or is
    still a template."""
    place: Location | None = parse_location(destination)
    if place is None or place.scheme not in STORAGE_SCHEMES or "{{" in place.text:
        return None
    return place.uri


def static_outlets(copy_results_to: Any) -> list[Any]:
    """Assets for the destinations of a ``copy_results_to`` known when the DAG is parsed: the folder,
    or each destination of a mapping. Templated or presigned destinations give none."""
    if copy_results_to is None:
        return []
    values: Iterable[Any] = (
        copy_results_to.values() if isinstance(copy_results_to, Mapping) else [copy_results_to]
    )
    uris = [storage_uri(value) for value in values]
    if not uris or any(uri is None for uri in uris):
        return []
    cls = asset_class()
    return [cls(uri) for uri in dict.fromkeys(u for u in uris if u is not None)]


def record_asset_events(context: Mapping[str, Any], outlets: Sequence[Any], extra: Mapping[str, Any]) -> int:
    """Put ``extra`` on the event each Asset outlet of the task emits; return how many."""
    events = context.get("outlet_events")
    if events is None:
        return 0
    count = 0
    for outlet in outlets:
        if is_asset(outlet):
            events[outlet].extra.update(extra)
            count += 1
    return count


def report_hook_lineage(hook: Any, inputs: Iterable[str] = (), outputs: Iterable[str] = ()) -> None:
    """Tell Airflow's hook lineage collector what ``hook`` read and wrote (storage URIs or local
    paths; anything else, e.g. a signed URL, is left out)."""
    from airflow.providers.common.compat.lineage.hook import get_hook_lineage_collector

    collector = get_hook_lineage_collector()  # type: ignore[no-untyped-call]
    for uri in filter(None, map(_lineage_uri, inputs)):
        collector.add_input_asset(context=hook, uri=uri)
    for uri in filter(None, map(_lineage_uri, outputs)):
        collector.add_output_asset(context=hook, uri=uri)


def _lineage_uri(location: Any) -> str | None:
    text = str(location)
    if text.startswith("/"):
        return "file://" + text
    return storage_uri(location)
