"""The job-launch service: every job, callback or manual, is created here.

It decides which launch-time variables a template accepts, refuses what a
host cannot answer, and inserts the job so that the database, not a
count-then-insert, keeps one active callback job per template and host.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from tornado_callback.accounts.secrets import ENCRYPTED, SecretsBox, SecretsUnreadable
from tornado_callback.jobs.extra_vars import ExtraVarsError, parse_variables, without_special_variables
from tornado_callback.jobs.survey import SurveyAnswerError, UserInputRequired, password_variables, survey_answers
from tornado_callback.jobs.survey_secrets import open_password_defaults
from tornado_callback.plugin.resolver import HostRef
from tornado_callback.store import queries
from tornado_callback.store.models import JobTemplate

log = logging.getLogger("tornado_callback.jobs.launch")

MSG_USER_INPUT = "Cannot start automatically, user input required!"
MSG_ALREADY_PENDING = "Host callback job already pending."
MSG_NO_MATCH = "No matching host could be found!"
MSG_MULTIPLE = "Multiple hosts matched the request!"
MSG_NO_INVENTORY = "Cannot start automatically, an inventory is required."


class LaunchRefused(Exception):
    """A launch that cannot go ahead: a 400 with AWX's ``msg`` (and extra fields)."""

    def __init__(self, msg: str, **extra: Any) -> None:
        super().__init__(msg)
        self.msg = msg
        self.extra = extra


def job_url(job_id: int) -> str:
    return f"/api/v2/jobs/{job_id}/"


class LaunchService:
    def __init__(self, secrets: SecretsBox) -> None:
        self.secrets = secrets  # opens the survey's password defaults
        # Called once a new job is committed, so that this process's workers
        # start it now instead of at their next poll.
        self.on_job_queued: Callable[[], None] = lambda: None

    def queued(self, job_id: int, job: Mapping[str, Any]) -> None:
        """A job (``job_values``) was committed: say so, and wake this process's workers."""
        log.info("job %s queued: %s launch of template %r, limit %r",
                 job_id, job["launch_type"], job["name"], job["limit"])
        self.on_job_queued()

    def accepted_variables(self, template: JobTemplate, raw: Any) -> dict[str, Any]:
        """The launch-time variables the template takes from ``raw``, as API.md says.

        Variables are applied only with ``ask_variables_on_launch`` (all of
        them) or an enabled survey (its variables, validated); ``ansible_*``
        keys never. Otherwise they are ignored, as AWX does.
        """
        if not (template.ask_variables_on_launch or template.survey_enabled):
            return {}
        try:
            given = without_special_variables(parse_variables(raw))
        except ExtraVarsError as e:
            raise LaunchRefused(str(e)) from e
        if template.ask_variables_on_launch:
            return given
        try:
            return survey_answers(open_password_defaults(template.survey_spec or {}, self.secrets), given)
        except SecretsUnreadable as e:
            raise LaunchRefused("A survey default cannot be decrypted with this server's secret key.") from e
        except UserInputRequired as e:
            raise LaunchRefused(MSG_USER_INPUT) from e
        except SurveyAnswerError as e:
            raise LaunchRefused(str(e)) from e

    def callback_job(
        self, template: JobTemplate, host: HostRef, raw_extra_vars: Any, resolved_by: str
    ) -> dict[str, Any]:
        """The row of ``host``'s callback job, checked before any database work."""
        return self.job_values(
            template, raw_extra_vars,
            host_id=host.id, launch_type="callback", limit=host.name, resolved_by=resolved_by,
        )

    def create_callback_job(self, db: Connection, template: JobTemplate, job: dict[str, Any]) -> int:
        """Insert the pending job in ``db``'s transaction (the caller commits it with its audit record)."""
        self.refuse_prompts(db, template)
        try:
            job_id = queries.insert_callback_job(db, job)
        except IntegrityError as e:  # the host was deleted since it matched
            raise LaunchRefused(MSG_NO_MATCH) from e
        if job_id is None:
            existing = queries.active_callback_job_id(db, template.id, job["host_id"])
            raise LaunchRefused(MSG_ALREADY_PENDING, job=existing)
        return job_id

    async def create_manual_job(
        self,
        session: AsyncSession,
        template: JobTemplate,
        raw_extra_vars: Any,
        limit: str | None,
        launched_by: int | None,
    ) -> dict[str, Any]:
        """Insert the pending job of a launch by a user in ``session``'s transaction; its row
        (``job_values`` and its ``id``), for ``queued`` once the caller has committed it.

        ``limit`` applies only with ``ask_limit_on_launch``, like launch-time
        variables; otherwise the template's own limit stands, as in AWX.
        """
        if template.inventory_id is None:
            raise LaunchRefused(MSG_NO_INVENTORY)
        job = self.job_values(
            template, raw_extra_vars, launch_type="manual", launched_by_id=launched_by,
            limit=limit if template.ask_limit_on_launch and limit is not None else template.limit,
        )

        def insert(sync_session: Session) -> int:
            db = sync_session.connection()
            self.refuse_prompts(db, template)
            return queries.insert_job(db, job)

        return {"id": await session.run_sync(insert), **job}

    def job_values(self, template: JobTemplate, raw_extra_vars: Any, **fields: Any) -> dict[str, Any]:
        """The row of a pending job of ``template``, with the launch-time variables it accepts."""
        launch_vars = self.accepted_variables(template, raw_extra_vars)
        passwords = password_variables(template.survey_spec or {}) if template.survey_enabled else frozenset()
        # What the job shows (its API answer, the command line): a password answer as AWX shows it.
        shown = {k: ENCRYPTED if k in passwords else v for k, v in launch_vars.items()}
        return {
            "job_template_id": template.id,
            "inventory_id": template.inventory_id,
            "name": template.name,
            "status": "pending",
            "extra_vars": merged_variables(template.extra_vars, shown),
            # Kept apart so that the run can hand them to Ansible as data (executor).
            "launch_vars": launch_vars,
            **fields,
        }

    @staticmethod
    def refuse_prompts(db: Connection, template: JobTemplate) -> None:
        """A host cannot type a password, and a launch by API has no prompt either."""
        if template.credential_id is not None and queries.credential_asks_at_launch(db, template.credential_id):
            raise LaunchRefused(MSG_USER_INPUT)


def merged_variables(
    template_vars: Mapping[str, Any] | None, launch_vars: Mapping[str, Any]
) -> dict[str, Any]:
    return {**(template_vars or {}), **launch_vars}
