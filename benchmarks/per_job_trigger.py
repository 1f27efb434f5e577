"""The baseline for row 3: one trigger per job, a new HTTP client for every poll.

This is the pattern of the official dbt Cloud provider's ``DbtCloudRunJobTrigger`` (its hook
reads the connection and opens a fresh ``aiohttp.ClientSession`` inside every
``get_job_status`` call), written with httpx2 as the brief asks: each poll reads the connection,
creates an ``httpx2.AsyncClient``, sends ``GET /job/:id`` and closes the client. One request and
one TCP connection per job per poll interval.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

FINAL = ("SUCCEEDED", "FAILED")


class PerJobClientTrigger(BaseTrigger):
    """Poll ``GET /job/:id`` with a new httpx2 client per poll until the job is final."""

    def __init__(self, job_id: str, musicai_conn_id: str = "musicai_default", poll_interval: float = 10.0):
        super().__init__()
        self.job_id = job_id
        self.musicai_conn_id = musicai_conn_id
        self.poll_interval = float(poll_interval)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_id": self.job_id,
                "musicai_conn_id": self.musicai_conn_id,
                "poll_interval": self.poll_interval,
            },
        )

    async def _get_job(self) -> dict[str, Any]:
        import httpx2
        from airflow.sdk import BaseHook

        connection = await BaseHook.aget_connection(self.musicai_conn_id)
        async with httpx2.AsyncClient(timeout=60) as client:
            response = await client.get(
                f"{connection.host.rstrip('/')}/job/{self.job_id}",
                headers={"Authorization": connection.password},
            )
            response.raise_for_status()
            return dict(response.json())

    async def run(self) -> AsyncIterator[TriggerEvent]:
        while True:
            try:
                job = await self._get_job()
            except Exception as exc:
                yield TriggerEvent({"status": "error", "job_id": self.job_id, "message": str(exc)})
                return
            if job.get("status") in FINAL:
                yield TriggerEvent({"status": "success", "job_id": self.job_id, "job": job})
                return
            await asyncio.sleep(self.poll_interval)
