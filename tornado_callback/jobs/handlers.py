"""/api/v2/jobs/: the job list, one job, its output, and canceling it."""

from __future__ import annotations

from typing import Any

from tornado_callback.http.base import APIHandler, bad_request
from tornado_callback.http.routes import Endpoint, Operation
from tornado_callback.http.values import parse_id
from tornado_callback.jobs.schemas import (
    CAN_CANCEL_SCHEMA,
    JOB_LIST_PARAMETERS,
    JOB_SCHEMA,
    JOB_STDOUT_PARAMETERS,
    JOB_STDOUT_SCHEMA,
)
from tornado_callback.jobs.service import (
    JobFilters,
    JobsService,
    can_cancel,
    event_summary,
    job_summary,
)


class JobsHandler(APIHandler):
    @property
    def jobs(self) -> JobsService:
        return self.services.jobs

    async def _job(self, job_id: str, role: str = "read") -> Any:
        principal = await self.authenticated_user()
        return await self.jobs.get_for(principal, self.object_id(job_id), role)


class JobListHandler(JobsHandler):
    async def get(self) -> None:
        principal = await self.authenticated_user()
        page, page_size = self.page_arguments()
        template = self.get_query_argument("job_template", None)
        template_id = parse_id(template) if template is not None else None
        if template is not None and template_id is None:
            raise bad_request("job_template must be a template id.")
        filters = JobFilters(
            job_template=template_id,
            status=self.get_query_argument("status", None),
            launch_type=self.get_query_argument("launch_type", None),
        )
        count, jobs = await self.jobs.page(principal, filters, page, page_size)
        self.write_page(count, [job_summary(j) for j in jobs], page, page_size)


class JobDetailHandler(JobsHandler):
    async def get(self, job_id: str) -> None:
        self.write_json(job_summary(await self._job(job_id)))


class JobStdoutHandler(JobsHandler):
    async def get(self, job_id: str) -> None:
        output_format = self.get_query_argument("format", "json")
        if output_format not in ("json", "txt"):
            raise bad_request("format must be txt or json.")
        job = await self._job(job_id)
        text = job.result_stdout
        if output_format == "txt":
            self.set_header("Content-Type", "text/plain; charset=utf-8")
            self.finish(text)
            return
        events = await self.jobs.events(job.id)
        lines = text.count("\n")
        self.write_json({
            "range": {"start": 0, "end": lines, "absolute_end": lines},
            "content": text,
            "events": [event_summary(e) for e in events],
        })


class JobCancelHandler(JobsHandler):
    async def get(self, job_id: str) -> None:
        job = await self._job(job_id)
        self.write_json({"can_cancel": can_cancel(job)})

    async def post(self, job_id: str) -> None:
        principal = await self.authenticated_user()
        await self.jobs.cancel(principal, self.object_id(job_id))
        # AWX answers an accepted cancel with 202 and no body.
        self.clear_header("Content-Type")
        self.set_status(202)
        self.finish()


endpoints = [
    Endpoint("/api/v2/jobs/", JobListHandler, (
        Operation("GET", "List the jobs of the templates the caller may read, newest first", 200,
                  response=JOB_SCHEMA, paged=True, parameters=JOB_LIST_PARAMETERS),)),
    Endpoint("/api/v2/jobs/{id}/", JobDetailHandler, (
        Operation("GET", "Read a job (template read role)", 200, response=JOB_SCHEMA),)),
    Endpoint("/api/v2/jobs/{id}/stdout/", JobStdoutHandler, (
        Operation("GET", "A job's output and events (template read role)", 200,
                  response=JOB_STDOUT_SCHEMA, parameters=JOB_STDOUT_PARAMETERS, plain_text=True),)),
    Endpoint("/api/v2/jobs/{id}/cancel/", JobCancelHandler, (
        Operation("GET", "Whether the job can still be canceled (template read role)", 200,
                  response=CAN_CANCEL_SCHEMA),
        Operation("POST", "Cancel a pending or running job (template execute role); "
                  "405 once it has finished", 202, errors=(401, 403, 404, 405)),
    )),
]
