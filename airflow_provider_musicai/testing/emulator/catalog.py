"""The workflows of one emulator: the built-ins plus those users declare.

A declaration (``POST /__emulator__/workflows``, ``--workflows FILE.json``, ``EmulatorServer(workflows=...)``
or the ``musicai_workflows`` pytest marker) is a JSON object::

    {"slug": "sdk-test", "name": "SDK test", "description": "",
     "inputs": [{"name": "file", "type": "file", "required": true},
                {"name": "language", "type": "string", "enum": ["en", "pt"]}],
     "outputs": [{"name": "file", "kind": "file"},
                 {"name": "Kick drum", "kind": "file", "extension": "wav"},
                 {"name": "bpm", "kind": "value", "type": "number"},
                 {"name": "key", "kind": "value", "type": "string", "value": "C major"}]}

A declaration with ``"errors": "<what is wrong>"`` is a workflow saved with errors: it is listed, and
``POST /job`` on it answers 422 "The workflow contains errors: <what is wrong>" (the reference's 422).

Input types are ``file`` (a URL the service downloads; at least one input is a file: the first one given
in a job's params is the job's input file), ``string``, ``number`` and ``boolean``. File outputs are derived
from the input file: a WAV (alternately its mid and side channels) for ``extension`` ``wav`` (the default),
else a copy of the input. Value outputs are ``value`` if given, else derived from the input file's
fingerprint (a number, or a string). A declared slug replaces a built-in of the same slug.
"""

from __future__ import annotations

import shutil
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, BinaryIO

from .state import iso
from .workflows import (
    PARAM_TYPES,
    WORKFLOWS,
    Generator,
    InputAudio,
    OutputSink,
    ParamSpec,
    Workflow,
    _write_stem,
    file_name,
)

OUTPUT_KINDS = ("file", "value")
VALUE_TYPES = ("string", "number")
_INPUT_FIELDS = {"name", "type", "required", "enum", "description"}
_OUTPUT_FIELDS = {"name", "kind", "type", "extension", "value"}
_WORKFLOW_FIELDS = {"slug", "name", "description", "inputs", "outputs", "errors"}


class DeclarationError(ValueError):
    """A workflow declaration is malformed; the message names the field."""


def _string(obj: Mapping[str, Any], key: str, where: str, default: str | None = None) -> str:
    value = obj.get(key, default)
    if not isinstance(value, str) or not value:
        raise DeclarationError(f"{where}: '{key}' must be a non-empty string")
    return value


def _object(value: Any, where: str, allowed: set[str]) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise DeclarationError(f"{where} must be an object")
    unknown = set(value) - allowed
    if unknown:
        raise DeclarationError(f"{where}: unknown field(s) {', '.join(sorted(unknown))}")
    return value


def _input(raw: Any, where: str) -> ParamSpec:
    spec = _object(raw, where, _INPUT_FIELDS)
    kind = spec.get("type", "string")
    if kind not in PARAM_TYPES:
        raise DeclarationError(f"{where}: 'type' must be one of {', '.join(PARAM_TYPES)}")
    enum = spec.get("enum")
    if enum is not None and (not isinstance(enum, list) or not enum):
        raise DeclarationError(f"{where}: 'enum' must be a non-empty list")
    if not isinstance(spec.get("required", False), bool):
        raise DeclarationError(f"{where}: 'required' must be true or false")
    return ParamSpec(
        name=_string(spec, "name", where),
        description=str(spec.get("description", "")),
        required=spec.get("required", False),
        enum=tuple(enum) if enum else None,
        type=kind,
    )


def _output(raw: Any, where: str) -> dict[str, Any]:
    spec = dict(_object(raw, where, _OUTPUT_FIELDS))
    _string(spec, "name", where)
    if spec.get("kind", "file") not in OUTPUT_KINDS:
        raise DeclarationError(f"{where}: 'kind' must be 'file' or 'value'")
    spec.setdefault("kind", "file")
    if spec["kind"] == "value":
        if spec.setdefault("type", "string") not in VALUE_TYPES:
            raise DeclarationError(f"{where}: 'type' must be 'string' or 'number'")
        value = spec.get("value")
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if value is not None and not (number if spec["type"] == "number" else isinstance(value, str)):
            raise DeclarationError(f"{where}: 'value' must be a {spec['type']}")
    else:
        extension = spec.setdefault("extension", "wav")
        if not isinstance(extension, str) or not extension.isalnum() or len(extension) > 10:
            raise DeclarationError(f"{where}: 'extension' must be a short alphanumeric string")
    return spec


def _copy_input(audio: InputAudio) -> Callable[[BinaryIO], None]:
    def write(out: BinaryIO) -> None:
        with audio.path.open("rb") as f:
            shutil.copyfileobj(f, out, 1 << 20)

    return write


def _declared_generator(outputs: Sequence[Mapping[str, Any]]) -> Generator:
    def generate(audio: InputAudio, params: Mapping[str, Any], sink: OutputSink) -> dict[str, Any]:
        digest = audio.digest()
        result: dict[str, Any] = {}
        for i, out in enumerate(outputs):
            name = out["name"]
            if out["kind"] == "file":
                ext = out["extension"]
                content = _write_stem(audio, i % 2) if ext == "wav" else _copy_input(audio)
                result[name] = sink.add_file(file_name(name, ext), "application/octet-stream", content)
            elif out.get("value") is not None:
                result[name] = out["value"]
            elif out["type"] == "number":
                result[name] = round(60 + int.from_bytes(digest[i : i + 2], "big") % 1200 / 10, 1)
            else:
                result[name] = f"{name} {digest[i : i + 4].hex()}"
        return result

    return generate


def parse_declaration(raw: Any, now: float) -> Workflow:
    """Build a :class:`Workflow` from a declaration; raise :class:`DeclarationError` naming the problem."""
    spec = _object(raw, "a workflow", _WORKFLOW_FIELDS)
    slug = _string(spec, "slug", "a workflow")
    where = f"workflow '{slug}'"
    inputs_raw, outputs_raw = spec.get("inputs"), spec.get("outputs")
    if not isinstance(inputs_raw, list) or not isinstance(outputs_raw, list) or not outputs_raw:
        raise DeclarationError(f"{where}: 'inputs' must be a list and 'outputs' a non-empty list")
    inputs = tuple(_input(item, f"{where} input #{i}") for i, item in enumerate(inputs_raw))
    outputs = [_output(item, f"{where} output #{i}") for i, item in enumerate(outputs_raw)]
    for label, names in (("input", [p.name for p in inputs]), ("output", [o["name"] for o in outputs])):
        if len(set(names)) != len(names):
            raise DeclarationError(f"{where}: duplicate {label} names")
    if not any(p.type == "file" for p in inputs):
        raise DeclarationError(f"{where}: at least one input must have type 'file'")
    errors = spec.get("errors")
    if errors is not None and (not isinstance(errors, str) or not errors):
        raise DeclarationError(f"{where}: 'errors' must be a non-empty string")
    stamp = iso(now)
    return Workflow(
        id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"musicai-emulator-workflow:{slug}")),
        slug=slug,
        name=_string(spec, "name", where, slug),
        description=str(spec.get("description", "")),
        created_at=stamp,
        updated_at=stamp,
        params=inputs,
        generate=_declared_generator(outputs),
        outputs=tuple(o["name"] for o in outputs),
        errors=errors,
    )


class WorkflowCatalog:
    """Built-in and declared workflows, newest first; ``restore`` goes back to the startup catalog."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._declared: list[Workflow] = []
        self._startup: list[Workflow] = []

    def declare(self, raw: Any, now: float) -> Workflow:
        """Add (or replace, by slug) a declared workflow."""
        workflow = parse_declaration(raw, now)
        with self._lock:
            self._declared = [w for w in self._declared if w.slug != workflow.slug] + [workflow]
        return workflow

    def remove(self, slug: str) -> bool:
        """Forget a declared workflow; False if none has that slug."""
        with self._lock:
            kept = [w for w in self._declared if w.slug != slug]
            found, self._declared = len(kept) != len(self._declared), kept
        return found

    def mark_startup(self) -> None:
        """Remember the current declarations as the ones :meth:`restore` goes back to."""
        with self._lock:
            self._startup = list(self._declared)

    def restore(self) -> None:
        """Back to the startup declarations."""
        with self._lock:
            self._declared = list(self._startup)

    def all(self) -> list[Workflow]:
        """Every workflow, newest first (declared ones, then the built-ins they do not replace)."""
        with self._lock:
            declared = list(reversed(self._declared))
        slugs = {w.slug for w in declared}
        return declared + [w for w in WORKFLOWS if w.slug not in slugs]

    def get(self, slug: str) -> Workflow | None:
        """The workflow ``slug`` or None."""
        return next((w for w in self.all() if w.slug == slug), None)
