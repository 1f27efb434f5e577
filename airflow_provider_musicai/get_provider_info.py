"""Provider metadata, read by Airflow through the ``apache_airflow_provider`` entry point."""

from __future__ import annotations

from typing import Any

from airflow_provider_musicai import __version__
from airflow_provider_musicai.defaults import DEFAULT_POLLER_LOG_INTERVAL

#: The connection extras: label, description and JSON schema, ``default`` included. The parser
#: (``hooks/_config.py``) and the docs read the defaults here; the connection forms get
#: :func:`form_fields`, which leaves them out.
CONN_FIELDS: dict[str, dict[str, Any]] = {
    "timeout": {
        "label": "Read timeout (seconds)",
        "description": "How long to wait for each API answer.",
        "schema": {"type": ["number", "null"], "default": 60, "minimum": 0.001},
    },
    "connect_timeout": {
        "label": "Connect timeout (seconds)",
        "schema": {"type": ["number", "null"], "default": 10, "minimum": 0.001},
    },
    "max_retries": {
        "label": "Max retries",
        "description": "Retries of connection errors, timeouts, 429 and 5xx answers (never 400/401/404/422).",
        "schema": {"type": ["integer", "null"], "default": 5, "minimum": 0},
    },
    "retry_backoff": {
        "label": "Retry backoff (seconds)",
        "description": "First retry waits about this long; each next one twice as long (with jitter).",
        "schema": {"type": ["number", "null"], "default": 1, "minimum": 0},
    },
    "retry_max_wait": {
        "label": "Longest wait between retries (seconds)",
        "schema": {"type": ["number", "null"], "default": 30, "minimum": 0},
    },
    "allow_plain_http": {
        "label": "Allow plain HTTP",
        "description": "Send the API key over plain http:// to a non-loopback host (default: refused).",
        "schema": {"type": ["boolean", "null"], "default": False},
    },
    "ca_bundle": {
        "label": "CA bundle (path)",
        "description": "PEM file of the CAs to trust for the API and storage (a private CA, a TLS proxy); "
        "replaces the system trust store for this connection, on sync and async calls alike.",
        "schema": {"type": ["string", "null"]},
    },
    "verify": {
        "label": "Verify TLS certificates",
        "description": "Off only for a test setup: anyone on the path could then read the API key.",
        "schema": {"type": ["boolean", "null"], "default": True},
    },
    "job_url_template": {
        "label": "Job page URL template",
        "description": "A job's web page, {job_id} where its id goes: a 'Music AI job' button on tasks.",
        "schema": {"type": ["string", "null"]},
    },
    "retry_max_time": {
        "label": "Retry time budget (seconds)",
        "description": "A call gives up once retrying would take longer than this.",
        "schema": {"type": ["number", "null"], "default": 300, "minimum": 0},
    },
    "transfer_min_rate": {
        "label": "Slowest transfer (bytes/s)",
        "description": "An upload or download slower than this on average over the rate window is cut "
        "off and retried (0: no minimum).",
        "schema": {"type": ["number", "null"], "default": 1024, "minimum": 0},
    },
    "transfer_rate_window": {
        "label": "Transfer rate window (seconds)",
        "description": "The period over which the transfer rate is averaged.",
        "schema": {"type": ["number", "null"], "default": 60, "minimum": 0.1},
    },
    "transfer_max_time": {
        "label": "Longest transfer (seconds)",
        "description": "Longest time one upload or download attempt may take (0: no limit).",
        "schema": {"type": ["number", "null"], "default": 0, "minimum": 0},
    },
    "total_timeout": {
        "label": "Total timeout per API request (seconds)",
        "description": "Wall-clock bound of one API request, answer included (the read timeout is per read).",
        "schema": {"type": ["number", "null"], "default": 120, "minimum": 0.001},
    },
    "max_response_bytes": {
        "label": "Largest API answer (bytes)",
        "description": "Decoded size above which an API answer is refused (e.g. a gzip bomb).",
        "schema": {"type": ["integer", "null"], "default": 67108864, "minimum": 1024},
    },
    "max_pages": {
        "label": "Most pages per listing",
        "description": "A listing taking more pages than this is refused as endless.",
        "schema": {"type": ["integer", "null"], "default": 10000, "minimum": 1},
    },
}


def default_text(name: str) -> str | None:
    """``"60"``, ``"false"``...: extra ``name``'s default as a user would type it, or None."""
    schema = CONN_FIELDS[name]["schema"]
    if "default" not in schema:
        return None
    default = schema["default"]
    return (
        str(default).lower()
        if isinstance(default, bool)
        else f"{default:g}"
        if isinstance(default, float)
        else str(default)
    )


def form_fields() -> dict[str, dict[str, Any]]:
    """``CONN_FIELDS`` as the connection forms get them: a field the user leaves empty is saved empty
    (``null``, or not at all on Airflow 2.11), which the provider reads as "the default of the
    release that reads it", instead of freezing this release's default into the connection. The
    default is shown in the description instead. On/off fields keep theirs: a switch has no empty
    state, and one shown off would mean the opposite of ``verify``'s default."""
    fields: dict[str, dict[str, Any]] = {}
    for name, spec in CONN_FIELDS.items():
        schema = dict(spec["schema"])
        field = {**spec, "schema": schema}
        text = default_text(name)
        if text is not None and "boolean" not in schema["type"]:
            del schema["default"]
            description = spec.get("description", "")
            field["description"] = f"{description} Default: {text}.".strip()
        fields[name] = field
    return fields


UI_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden_fields": ["schema", "port", "login"],
    "relabeling": {"host": "API base URL", "password": "API key"},
    "placeholders": {
        "host": "https://api.music.ai/v1 (leave empty for the Music AI cloud)",
        "password": "your Music AI API key",
    },
}


def get_provider_info() -> dict[str, Any]:
    """Describe the provider to Airflow: hooks, operators, sensors, triggers and the connection type."""
    return {
        "package-name": "airflow-provider-musicai",
        "name": "Music AI",
        # The link is followed by a space: Airflow 3's UI links whole space-separated words (a colon
        # right after it became part of the URL), Airflow 2.11 renders the RST link itself.
        "description": "`Music AI <https://music.ai/>`__ (stem separation, transcription, chords, beats).",
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Music AI",
                "external-doc-url": "https://music.ai/docs/api/reference/",
                "tags": ["service"],
            }
        ],
        "hooks": [
            {"integration-name": "Music AI", "python-modules": ["airflow_provider_musicai.hooks.musicai"]}
        ],
        "operators": [
            {
                "integration-name": "Music AI",
                "python-modules": [
                    "airflow_provider_musicai.operators.musicai",
                    "airflow_provider_musicai.operators.catalog",
                ],
            }
        ],
        "sensors": [
            {"integration-name": "Music AI", "python-modules": ["airflow_provider_musicai.sensors.musicai"]}
        ],
        "triggers": [
            {
                "integration-name": "Music AI",
                "python-modules": [
                    "airflow_provider_musicai.triggers.musicai",
                    "airflow_provider_musicai.triggers.events",
                    "airflow_provider_musicai.triggers.catalog",
                ],
            }
        ],
        "task-decorators": [
            {"name": "musicai", "class-name": "airflow_provider_musicai.decorators.musicai.musicai_task"}
        ],
        "extra-links": ["airflow_provider_musicai.links.MusicAIJobLink"],
        "config": {
            "musicai": {
                "description": "Settings of the Music AI provider that are not per connection.\n",
                "options": {
                    "poller_log_interval": {
                        "description": (
                            "Seconds between the summary lines each triggerer's shared Music AI poller "
                            "logs: jobs waited on, poll cycles and API requests (listing pages and job "
                            "reads) since the last line. 0 turns them off.\n"
                        ),
                        "version_added": None,
                        "type": "float",
                        "example": "60",
                        "default": f"{DEFAULT_POLLER_LOG_INTERVAL:g}",
                    }
                },
            }
        },
        "connection-types": [
            {
                "connection-type": "musicai",
                "hook-class-name": "airflow_provider_musicai.hooks.musicai.MusicAIHook",
                "hook-name": "Music AI",
                "ui-field-behaviour": {
                    "hidden-fields": UI_FIELD_BEHAVIOUR["hidden_fields"],
                    "relabeling": UI_FIELD_BEHAVIOUR["relabeling"],
                    "placeholders": UI_FIELD_BEHAVIOUR["placeholders"],
                },
                "conn-fields": form_fields(),
            }
        ],
    }
