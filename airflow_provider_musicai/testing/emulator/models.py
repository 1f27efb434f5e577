"""Pydantic models used only to document the public API in the OpenAPI schema."""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel, Field


class JobStatus(str, Enum):  # noqa: UP042 - StrEnum would change str() of a member
    """A job status."""

    QUEUED = "QUEUED"
    STARTED = "STARTED"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"


class ErrorBody(BaseModel):
    """Every API error: read ``message``."""

    statusCode: int
    error: str
    message: str


class ApplicationOut(BaseModel):
    """The application of the API key."""

    id: str
    name: str


class UploadOut(BaseModel):
    """Signed URLs of a new upload slot."""

    uploadUrl: str = Field(description="Signed URL to PUT the file to (temporary).")
    downloadUrl: str = Field(description="Signed URL to GET the file from once uploaded (temporary).")


class JobErrorOut(BaseModel):
    """Why a job FAILED."""

    code: str = Field(description="BAD_INPUT, TIMEOUT or INTERNAL_ERROR")
    title: str
    message: str


class WorkflowRefOut(BaseModel):
    """A job's workflow in the older reference's object form (``workflow_shape`` ``"object"``)."""

    id: str
    name: str


class JobOut(BaseModel):
    """A job."""

    id: str
    app: str
    name: str
    batchName: str | None
    metadata: dict[str, str | float | bool]
    workflow: str | WorkflowRefOut = Field(description="The workflow's slug (or its {id, name} object form)")
    workflowParams: dict[str, Any]
    status: JobStatus
    result: dict[str, Any] | None
    error: JobErrorOut | None
    createdAt: str
    startedAt: str | None
    completedAt: str | None


class JobListOut(BaseModel):
    """The object shape of ``GET /job`` (the emulator serves a bare array by default)."""

    jobs: list[JobOut]


class JobStatusOut(BaseModel):
    """A job's status."""

    id: str
    status: JobStatus


class JobIdOut(BaseModel):
    """A job id."""

    id: str


class WorkflowOut(BaseModel):
    """A workflow."""

    id: str
    name: str
    slug: str
    description: str
    createdAt: str
    updatedAt: str


class WorkflowListOut(BaseModel):
    """A page of workflows."""

    workflows: list[WorkflowOut]
