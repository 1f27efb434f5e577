"""Request bodies of the public API, each described once: its OpenAPI schema and its validation.

A :class:`BodyField` holds a field's JSON schema and the check that enforces it, so the schema the
emulator publishes and the answers it gives cannot drift apart.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import InvalidBody


@dataclass(frozen=True)
class BodyField:
    """One field of a JSON request body."""

    name: str
    schema: dict[str, Any]
    #: Returns why a value does not fit (the answer's message), or None.
    check: Callable[[Any], str | None]
    required: bool = False


def _when(ok: Callable[[Any], bool], problem: str) -> Callable[[Any], str | None]:
    return lambda value: None if ok(value) else problem


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _nonblank(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _metadata(value: Any) -> str | None:
    if not isinstance(value, dict):
        return "Field 'metadata' must be an object."
    for key, item in value.items():
        if not isinstance(item, (str, int, float, bool)):
            return f"Field 'metadata.{key}' must be a string, number or boolean."
    return None


def _url_map(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(url, str) and url.startswith(("http://", "https://")) for url in value.values()
    )


CREATE_JOB: tuple[BodyField, ...] = (
    BodyField(
        "name", {"type": "string", "minLength": 1, "description": "Arbitrary job name."},
        _when(_nonblank, "Field 'name' must be a non-empty string."), required=True,
    ),
    BodyField(
        "workflow", {"type": "string", "description": "Workflow slug."},
        _when(lambda v: isinstance(v, str) and bool(v), "Field 'workflow' must be a non-empty string."),
        required=True,
    ),
    BodyField(
        "params",
        {"type": "object", "description": "Workflow parameters; must match the workflow's input schema "
         "(the built-in workflows take `inputUrl`)."},
        _when(lambda v: isinstance(v, dict), "Field 'params' must be an object."), required=True,
    ),
    BodyField(
        "metadata",
        {"type": "object",
         "additionalProperties": {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}]}},
        _metadata,
    ),
    BodyField(
        "batchName",
        {"type": ["string", "null"], "description": "Emulator extension: batch name of the job."},
        _when(lambda v: v is None or isinstance(v, str), "Field 'batchName' must be a string or null."),
    ),
    BodyField(
        "copyResultsTo",
        {"type": "object", "additionalProperties": {"type": "string", "format": "uri"},
         "description": "Output name -> presigned PUT URL: the output is written there and its result "
         "value becomes `[custom storage]`."},
        _when(_url_map, "Field 'copyResultsTo' must map output names to http(s) URLs."),
    ),
)  # fmt: skip
"""``POST /job``."""


def schema(fields: Sequence[BodyField]) -> dict[str, Any]:
    """The OpenAPI schema of a body made of ``fields``."""
    return {
        "type": "object",
        "required": [f.name for f in fields if f.required],
        "properties": {f.name: f.schema for f in fields},
    }


def parse(raw: bytes, fields: Sequence[BodyField]) -> dict[str, Any]:
    """Decode and validate a JSON body; raise :class:`InvalidBody` naming the first bad field."""
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise InvalidBody() from exc
    if not isinstance(body, dict):
        raise InvalidBody()
    for field in fields:
        if field.name not in body:
            if field.required:
                raise InvalidBody(f"Missing required field '{field.name}'.")
            continue
        problem = field.check(body[field.name])
        if problem is not None:
            raise InvalidBody(problem)
    return body
