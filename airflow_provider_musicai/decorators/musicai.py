"""``@task.musicai``: a TaskFlow function that returns a job's params; the task runs the job.

The function gets its upstream values like any TaskFlow task and returns either the job's
``params`` (``{"inputUrl": ...}``) or ``{"params": {...}, "name": "...", "metadata": {...}}``.
The task is a :class:`~airflow_provider_musicai.operators.musicai.MusicAICreateJobOperator`:
it creates the job, waits (deferred when ``deferrable=True``) and returns the final job document,
with everything that operator guarantees (no duplicate job on retry, the job deleted when the task
is killed, ``musicai-result://`` references instead of signed URLs).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.providers.common.compat.sdk import (
    DecoratedOperator,
    context_merge,
    determine_kwargs,
    task_decorator_factory,
)

from airflow_provider_musicai.operators.musicai import MusicAICreateJobOperator

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context, TaskDecorator

_RETURN_KEYS = frozenset({"params", "name", "metadata"})
_PENDING_PARAMS: Mapping[str, Any] = {"params": "set when the task runs, from the function's return value"}


def job_spec(returned: Any) -> tuple[Mapping[str, Any], str | None, Mapping[str, Any] | None]:
    """``(params, name, metadata)`` of what a ``@task.musicai`` function returned.

    A mapping with a ``params`` key and no keys but ``params``/``name``/``metadata`` is the long
    form; any other mapping is the params themselves.
    """
    if not isinstance(returned, Mapping) or not returned:
        raise TypeError(
            "A @task.musicai function must return the job's params (a non-empty dict such as "
            "{'inputUrl': ...}) or {'params': ..., 'name': ..., 'metadata': ...}; "
            f"got {type(returned).__name__}"
        )
    if "params" in returned and set(returned) <= _RETURN_KEYS:
        params = returned["params"]
        if not isinstance(params, Mapping) or not params:
            raise TypeError(
                f"'params' returned by a @task.musicai function must be a non-empty dict: {params!r:.80}"
            )
        return params, returned.get("name"), returned.get("metadata")
    return returned, None, None


class _MusicAIDecoratedOperator(DecoratedOperator, MusicAICreateJobOperator):  # type: ignore[misc]
    """Runs the TaskFlow function for the job's params, then creates the job and waits for it."""

    template_fields: Sequence[str] = (
        *DecoratedOperator.template_fields,
        *MusicAICreateJobOperator.template_fields,
    )
    template_fields_renderers: ClassVar[dict[str, str]] = {
        **DecoratedOperator.template_fields_renderers,
        **MusicAICreateJobOperator.template_fields_renderers,
    }
    custom_operator_name: str = "@task.musicai"

    def __init__(
        self,
        *,
        python_callable: Callable[..., Any],
        op_args: Collection[Any] | None = None,
        op_kwargs: Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("name", kwargs["task_id"])
        super().__init__(
            python_callable=python_callable,
            op_args=op_args,
            op_kwargs=op_kwargs,
            workflow_params=_PENDING_PARAMS,
            **kwargs,
        )

    def execute(self, context: Context) -> Any:
        context_merge(context, self.op_kwargs)
        kwargs = determine_kwargs(self.python_callable, self.op_args, context)
        params, name, metadata = job_spec(self.python_callable(*self.op_args, **kwargs))
        self.workflow_params = params
        if name:
            self.name = str(name)
        if metadata:
            self.metadata = {**dict(self.metadata or {}), **dict(metadata)}
        return super().execute(context)


def musicai_task(python_callable: Callable[..., Any] | None = None, **kwargs: Any) -> TaskDecorator:
    """``@task.musicai(workflow=..., deferrable=..., musicai_conn_id=...)``: run a Music AI job.

    The decorated function returns the job's params, or ``{"params": ..., "name": ...,
    "metadata": ...}``; every other argument is a ``MusicAICreateJobOperator`` argument (``name``
    defaults to the task id). The task returns the final job document; its results are handed on
    with ``musicai_result(output, "vocals")``.
    """
    kwargs.setdefault("multiple_outputs", False)
    return task_decorator_factory(  # type: ignore[no-any-return]
        python_callable=python_callable,
        decorated_operator_class=_MusicAIDecoratedOperator,
        **kwargs,
    )
