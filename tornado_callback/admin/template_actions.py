"""A job template's survey and its manual launch (``/survey_spec/``, ``/launch/``).

A manual launch goes through the same ``LaunchService`` as a callback, so the
same rules decide which variables apply; only the launch type, the optional
``limit`` and the caller differ.
"""

from __future__ import annotations

import json
import re
from typing import Any

from tornado_callback.accounts.service import Principal
from tornado_callback.admin.fields import (
    ENCRYPTED,
    Invalid,
    String,
    ValidationError,
    Variables,
    storable_text,
)
from tornado_callback.admin.service import AdminService
from tornado_callback.errors import ServiceError
from tornado_callback.jobs.launch import LaunchRefused, LaunchService, job_url
from tornado_callback.jobs.survey_secrets import is_password_default, seal_password_defaults

QUESTION_TYPES = ("text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect")
VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
LAUNCH_LIMIT = String("limit", max_length=65536)
LAUNCH_VARIABLES = Variables("extra_vars")
LAUNCH_KEYS = frozenset({LAUNCH_LIMIT.name, LAUNCH_VARIABLES.name})
MAX_QUESTIONS = 500

SURVEY_SPEC_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "AWX's survey format; {} when the template has none.",
    "properties": {
        "name": {"type": "string"},
        "description": {"type": "string"},
        "spec": {"type": "array", "maxItems": MAX_QUESTIONS, "items": {
            "type": "object",
            "required": ["question_name", "variable", "type"],
            "properties": {
                "question_name": {"type": "string", "minLength": 1},
                "question_description": {"type": "string"},
                "variable": {"type": "string", "pattern": VARIABLE_NAME.pattern},
                "type": {"type": "string", "enum": list(QUESTION_TYPES)},
                "required": {"type": "boolean"},
                "default": {},
                "choices": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
                "min": {"type": "number"},
                "max": {"type": "number"},
            },
        }},
    },
}
LAUNCH_BODY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "extra_vars": {"oneOf": [{"type": "object"}, {"type": "string"}],
                       "description": "Applied with ask_variables_on_launch, or the survey's variables."},
        "limit": {**LAUNCH_LIMIT.value_schema(), "description": "Applied with ask_limit_on_launch."},
    },
}
LAUNCHED_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["job", "id", "type", "url", "ignored_fields"],
    "properties": {
        "job": {"type": "integer"}, "id": {"type": "integer"},
        "type": {"type": "string", "enum": ["job"]}, "url": {"type": "string"},
        "ignored_fields": {"type": "object"},
    },
}
LAUNCH_INFO_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {name: {"type": "boolean"} for name in (
        "can_start_without_user_input", "ask_variables_on_launch", "ask_limit_on_launch",
        "survey_enabled", "inventory_needed_to_start")} | {
        "variables_needed_to_start": {"type": "array", "items": {"type": "string"}}},
}


def _question_errors(index: int, question: Any, seen: set[str]) -> list[str]:
    where = f"question {index + 1}"
    if not isinstance(question, dict):
        return [f"{where} must be an object."]
    errors = []
    if not isinstance(question.get("question_name"), str) or not question["question_name"]:
        errors.append(f"{where}: 'question_name' is required.")
    variable = question.get("variable")
    if not isinstance(variable, str) or not VARIABLE_NAME.match(variable):
        errors.append(f"{where}: 'variable' must be a variable name.")
    elif variable in seen:
        errors.append(f"{where}: variable {variable!r} is asked twice.")
    else:
        seen.add(variable)
    kind = question.get("type")
    if kind not in QUESTION_TYPES:
        errors.append(f"{where}: 'type' must be one of {', '.join(QUESTION_TYPES)}.")
    if kind == "password" and not isinstance(question.get("default", ""), str | None):
        errors.append(f"{where}: a password question's 'default' must be a string.")
    if not isinstance(question.get("required", False), bool):
        errors.append(f"{where}: 'required' must be a boolean.")
    for bound in ("min", "max"):
        value = question.get(bound)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            errors.append(f"{where}: {bound!r} must be a number.")
    choices = question.get("choices", [])
    if not isinstance(choices, str) and not (
        isinstance(choices, list) and all(isinstance(c, str) for c in choices)
    ):
        errors.append(f"{where}: 'choices' must be a list of strings or newline-separated text.")
    elif kind in ("multiplechoice", "multiselect") and not (
        [c for c in choices.split("\n") if c] if isinstance(choices, str) else choices
    ):
        errors.append(f"{where}: a {kind} question needs choices.")
    return errors


def validate_survey_spec(spec: Any) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise ServiceError.detail("The body must be a JSON object.")
    questions = spec.get("spec")
    if not isinstance(questions, list):
        raise ValidationError.one("spec", "'spec' must be a list of questions.")
    if len(questions) > MAX_QUESTIONS:
        raise ValidationError.one("spec", f"At most {MAX_QUESTIONS} questions.")
    for key in ("name", "description"):
        if not isinstance(spec.get(key, ""), str):
            raise ValidationError.one(key, "Not a valid string.")
    seen: set[str] = set()
    errors = [e for i, q in enumerate(questions) for e in _question_errors(i, q, seen)]
    if errors:
        raise ValidationError({"spec": errors})
    try:
        storable_text(json.dumps(spec, ensure_ascii=False, allow_nan=False).replace("\\u0000", "\x00"))
    except (Invalid, ValueError) as e:
        raise ValidationError.one("spec", "The survey must be plain JSON text.") from e
    return spec


class TemplateActions:
    def __init__(self, admin: AdminService, launcher: LaunchService) -> None:
        self.admin = admin
        self.launcher = launcher

    async def _template(self, principal: Principal, template_id: int, action: str) -> Any:
        async with self.admin.db.session() as session:
            return await self.admin.visible_object(
                session, self.admin.resource("job_templates"), principal, template_id, action
            )

    async def survey_spec(self, principal: Principal, template_id: int) -> dict[str, Any]:
        """The survey, with the defaults of password questions shown as ``$encrypted$``, as AWX does."""
        spec = (await self._template(principal, template_id, "read")).survey_spec or {}
        if not spec:
            return {}
        return {**spec, "spec": [
            {**q, "default": ENCRYPTED} if is_password_default(q) else q for q in spec.get("spec", [])
        ]}

    async def set_survey_spec(self, principal: Principal, template_id: int, spec: Any) -> None:
        """Replace the survey (``None`` removes it). Enabling it is the template's ``survey_enabled``."""
        spec = {} if spec is None else validate_survey_spec(spec)
        async with self.admin.db.session() as session:
            template = await self.admin.visible_object(
                session, self.admin.resource("job_templates"), principal, template_id, "change"
            )
            template.survey_spec = seal_password_defaults(spec, template.survey_spec or {}, self.admin.secrets)
            await session.commit()

    async def launch_info(self, principal: Principal, template_id: int) -> dict[str, Any]:
        template = await self._template(principal, template_id, "execute")
        needed = [
            q["variable"] for q in (template.survey_spec or {}).get("spec", [])
            if template.survey_enabled and q.get("required") and q.get("default") in (None, "")
        ]
        return {
            "can_start_without_user_input": not needed and template.inventory_id is not None,
            "ask_variables_on_launch": template.ask_variables_on_launch,
            "ask_limit_on_launch": template.ask_limit_on_launch,
            "survey_enabled": template.survey_enabled,
            "inventory_needed_to_start": template.inventory_id is None,
            "variables_needed_to_start": needed,
        }

    async def launch(self, principal: Principal, template_id: int, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise ServiceError.detail("The body must be a JSON object.")
        unknown = sorted(set(body) - LAUNCH_KEYS)
        if unknown:
            raise ValidationError({key: ["Unknown field."] for key in unknown})
        values = {}
        for field in (LAUNCH_LIMIT, LAUNCH_VARIABLES):
            if body.get(field.name) is not None:
                try:
                    values[field.name] = field.parse(body[field.name])
                except Invalid as e:
                    raise ValidationError.one(field.name, str(e)) from e
        limit = values.get("limit")
        async with self.admin.db.session() as session:
            template = await self.admin.visible_object(
                session, self.admin.resource("job_templates"), principal, template_id, "execute"
            )
            try:
                job = await self.launcher.create_manual_job(
                    session, template, values.get("extra_vars"), limit, principal.id
                )
            except LaunchRefused as e:
                raise ServiceError({"detail": e.msg, **e.extra}) from e
            await session.commit()
        job_id = job["id"]
        self.launcher.queued(job_id, job)
        ignored = {}
        if "extra_vars" in body and not (template.ask_variables_on_launch or template.survey_enabled):
            ignored["extra_vars"] = body["extra_vars"]
        if limit is not None and not template.ask_limit_on_launch:
            ignored["limit"] = limit
        return {"job": job_id, "id": job_id, "type": "job", "url": job_url(job_id), "ignored_fields": ignored}
