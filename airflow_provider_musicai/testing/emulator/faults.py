"""Fault injection plans: HTTP-level faults (rate or script) and job errors.

A plan is set with ``POST /__emulator__/faults`` (it replaces the previous one)::

    {
      "script": [{"match": "POST /v1/job", "fault": "drop_after", "count": 1, "skip": 0}],
      "rate": 0.2, "weights": {"503": 2, "drop": 1}, "seed": 7, "scope": "api", "match": ["GET /v1/job/*"],
      "retry_after": 1, "slow_seconds": 3.0,
      "job_errors": {"next": 1, "rate": 0.0, "seed": null, "workflows": null, "code": "INTERNAL_ERROR"}
    }

A request first consumes the first script entry whose ``match`` fits it (after letting ``skip`` matching
requests through), else draws against ``rate``. Patterns are shell globs matched against
``"<METHOD> <endpoint template>"`` and ``"<METHOD> <path>"`` (e.g. ``"GET /v1/job/{id}"``,
``"* /storage/*"``); a pattern starting with ``/`` matches any method. The admin API is never faulted.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

#: Every HTTP fault kind.
FAULT_KINDS = ("429", "500", "502", "503", "drop", "drop_after", "slow", "truncate")
#: Weights used by a rate plan that gives none (``slow`` excluded: it makes tests slow).
DEFAULT_WEIGHTS = {
    "429": 1.0,
    "500": 1.0,
    "502": 1.0,
    "503": 1.0,
    "drop": 1.0,
    "drop_after": 1.0,
    "truncate": 1.0,
}
#: Job error codes and their titles, as the API reference lists them.
JOB_ERROR_TITLES = {"BAD_INPUT": "Invalid input", "TIMEOUT": "Timeout", "INTERNAL_ERROR": "Internal error"}
_SCOPES = ("api", "storage", "both")
_PLAN_FIELDS = {
    "script",
    "rate",
    "weights",
    "seed",
    "scope",
    "match",
    "retry_after",
    "slow_seconds",
    "job_errors",
}


@dataclass(frozen=True)
class Fault:
    """A fault to apply to one request."""

    kind: str
    retry_after: int = 1
    seconds: float = 3.0


@dataclass
class ScriptEntry:
    """A deterministic fault for the next ``count`` requests matching ``match`` (after ``skip``)."""

    match: str
    fault: Fault
    count: int = 1
    skip: int = 0

    def to_json(self) -> dict[str, Any]:
        """JSON form (with the remaining count and skip)."""
        return {
            "match": self.match,
            "fault": self.fault.kind,
            "count": self.count,
            "skip": self.skip,
            "retry_after": self.fault.retry_after,
            "seconds": self.fault.seconds,
        }


@dataclass
class JobErrorPlan:
    """Makes jobs fail with ``code``: the next ``next`` jobs, then a ``rate`` of them."""

    next: int = 0
    rate: float = 0.0
    seed: int | None = None
    workflows: list[str] | None = None
    code: str = "INTERNAL_ERROR"
    message: str | None = None
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def decide(self, workflow: str) -> tuple[str, str, str] | None:
        """Return ``(code, title, message)`` if a new job of ``workflow`` must fail, else None."""
        if self.workflows is not None and workflow not in self.workflows:
            return None
        if self.next > 0:
            self.next -= 1
        elif not (self.rate > 0 and self._rng.random() < self.rate):
            return None
        message = self.message or (
            "Our server encountered an error while running the job (injected by the emulator)."
        )
        return self.code, JOB_ERROR_TITLES[self.code], message

    def to_json(self) -> dict[str, Any]:
        """JSON form."""
        return {
            "next": self.next,
            "rate": self.rate,
            "seed": self.seed,
            "workflows": self.workflows,
            "code": self.code,
            "message": self.message,
        }


def _number(doc: dict[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = doc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"'{key}' must be a number between {low} and {high}")
    return float(value)


def _int(doc: dict[str, Any], key: str, default: int, low: int = 0) -> int:
    value = doc.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"'{key}' must be an integer >= {low}")
    return value


def _fault(doc: dict[str, Any], kind: Any, defaults: Fault) -> Fault:
    if kind not in FAULT_KINDS:
        raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
    return Fault(
        kind=kind,
        retry_after=_int(doc, "retry_after", defaults.retry_after),
        seconds=_number(doc, "seconds", defaults.seconds, 0, 3600),
    )


def _patterns(value: Any, key: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"'{key}' must be a pattern or a list of patterns")
    return value


def matches(pattern: str, method: str, template: str, path: str) -> bool:
    """Whether ``pattern`` matches a request (see the module docstring)."""
    if pattern.startswith("/"):
        pattern = "* " + pattern
    return fnmatchcase(f"{method} {template}", pattern) or fnmatchcase(f"{method} {path}", pattern)


class FaultPlan:
    """A parsed, thread-safe fault plan."""

    def __init__(self, doc: dict[str, Any] | None = None) -> None:
        doc = dict(doc or {})
        unknown = set(doc) - _PLAN_FIELDS
        if unknown:
            raise ValueError(f"unknown fault plan field(s): {', '.join(sorted(unknown))}")
        self._lock = threading.Lock()
        self.defaults = Fault("500", _int(doc, "retry_after", 1), _number(doc, "slow_seconds", 3.0, 0, 3600))
        self.script: list[ScriptEntry] = []
        for raw in doc.get("script") or []:
            if not isinstance(raw, dict) or "fault" not in raw:
                raise ValueError("each script entry must be an object with 'fault' (and 'match')")
            self.script.append(
                ScriptEntry(
                    match=_patterns(raw.get("match", "*"), "match")[0],
                    fault=_fault(raw, raw["fault"], self.defaults),
                    count=_int(raw, "count", 1, 1),
                    skip=_int(raw, "skip", 0),
                )
            )
        self.rate = _number(doc, "rate", 0.0, 0.0, 1.0)
        weights = doc.get("weights") or DEFAULT_WEIGHTS
        if not isinstance(weights, dict) or not weights:
            raise ValueError("'weights' must be an object of fault kind -> weight")
        self.weights = {str(k): _number(weights, k, 0, 0, 1e9) for k in weights}
        for kind in self.weights:
            _fault({}, kind, self.defaults)
        if self.rate > 0 and sum(self.weights.values()) <= 0:
            raise ValueError("'weights' must have a positive total")
        self.seed = doc.get("seed")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise ValueError("'seed' must be an integer or null")
        self._rng = random.Random(self.seed)
        self.scope = doc.get("scope", "api")
        if self.scope not in _SCOPES:
            raise ValueError(f"'scope' must be one of {', '.join(_SCOPES)}")
        self.match = _patterns(doc.get("match", "*"), "match")
        self.job_errors = self._job_errors(doc.get("job_errors") or {})

    @staticmethod
    def _job_errors(doc: Any) -> JobErrorPlan:
        if not isinstance(doc, dict):
            raise ValueError("'job_errors' must be an object")
        unknown = set(doc) - {"next", "rate", "seed", "workflows", "code", "message"}
        if unknown:
            raise ValueError(f"unknown job_errors field(s): {', '.join(sorted(unknown))}")
        code = doc.get("code", "INTERNAL_ERROR")
        if code not in JOB_ERROR_TITLES:
            raise ValueError(f"'job_errors.code' must be one of {', '.join(JOB_ERROR_TITLES)}")
        workflows = doc.get("workflows")
        if workflows is not None:
            workflows = _patterns(workflows, "job_errors.workflows")
        message = doc.get("message")
        if message is not None and not isinstance(message, str):
            raise ValueError("'job_errors.message' must be a string")
        seed = doc.get("seed")
        return JobErrorPlan(
            next=_int(doc, "next", 0),
            rate=_number(doc, "rate", 0.0, 0.0, 1.0),
            seed=seed,
            workflows=workflows,
            code=code,
            message=message,
            _rng=random.Random(seed),
        )

    def pick(self, listener: str, method: str, template: str, path: str) -> Fault | None:
        """Return the fault to apply to this request, consuming script entries; None for no fault."""
        with self._lock:
            for index, entry in enumerate(self.script):
                if not matches(entry.match, method, template, path):
                    continue
                if entry.skip > 0:
                    entry.skip -= 1
                    return None
                entry.count -= 1
                if entry.count <= 0:
                    del self.script[index]
                return entry.fault
            if self.rate <= 0 or self.scope not in (listener, "both"):
                return None
            if not any(matches(p, method, template, path) for p in self.match):
                return None
            if self._rng.random() >= self.rate:
                return None
            kinds = list(self.weights)
            kind = self._rng.choices(kinds, weights=[self.weights[k] for k in kinds])[0]
            return Fault(kind, self.defaults.retry_after, self.defaults.seconds)

    def job_error(self, workflow: str) -> tuple[str, str, str] | None:
        """Return the error a new job of ``workflow`` must end with, if any."""
        with self._lock:
            return self.job_errors.decide(workflow)

    def to_json(self) -> dict[str, Any]:
        """JSON form, with remaining script counts."""
        with self._lock:
            return {
                "script": [entry.to_json() for entry in self.script],
                "rate": self.rate,
                "weights": self.weights,
                "seed": self.seed,
                "scope": self.scope,
                "match": self.match,
                "retry_after": self.defaults.retry_after,
                "slow_seconds": self.defaults.seconds,
                "job_errors": self.job_errors.to_json(),
            }
