"""The "Music AI job" button on a task: a link to the job's web page.

The operator (or sensor) pushes the job's URL to XCom under :data:`XCOM_KEY` as soon as the job
exists, so the button works while the task waits (deferred or not), for each mapped task instance,
and after the task finished. The URL comes from the connection extra ``job_url_template`` (e.g.
``https://example.com/jobs/{job_id}``); without it (or with no single job) the value is ``""`` and
Airflow shows no link. Music AI documents no public per-job page, so there is no default template.

The key is always pushed, ``""`` included: Airflow 3's task runner reads it whenever the task ends
or defers, and reading a key never pushed makes Airflow log ``[error] XCom not found``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import BaseOperator, Context
    from airflow.sdk.types import TaskInstanceKey

    from airflow_provider_musicai.hooks.musicai import MusicAIHook

#: XCom key holding the job's URL (Airflow 3's API server reads the link from this key directly).
XCOM_KEY = "musicai_job_url"


class MusicAIJobLink(BaseOperatorLink):
    """Operator extra link "Music AI job": the URL the task pushed to XCom, or "" (no link)."""

    name = "Music AI job"

    @property
    def xcom_key(self) -> str:
        """Where the task stores the whole link (Airflow 3 reads it from here)."""
        return XCOM_KEY

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        value: Any = XCom.get_value(ti_key=ti_key, key=XCOM_KEY)
        return value if isinstance(value, str) and value.startswith(("http://", "https://")) else ""


def push_job_link(context: Context, hook: MusicAIHook, job_id: str | None) -> str | None:
    """Push ``job_id``'s page URL to XCom for the "Music AI job" button, or ``""`` (no link) when
    the connection has no ``job_url_template`` or ``job_id`` is None; return the URL or None."""
    url = None if job_id is None else hook.config.job_url(job_id)
    context["ti"].xcom_push(key=XCOM_KEY, value=url or "")
    return url
