"""Survey answers: only the survey's variables, each checked against its question."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


class UserInputRequired(Exception):
    """A required question has no answer and no default: a host cannot type one."""


class SurveyAnswerError(ValueError):
    """An answer that does not fit its question (the message says which and why)."""


def _choices(question: Mapping[str, Any]) -> list[str]:
    choices = question.get("choices", [])
    if isinstance(choices, str):
        return [c for c in choices.split("\n") if c]
    return [str(c) for c in choices]


def _check(question: Mapping[str, Any], value: Any) -> Any:
    variable = question["variable"]
    kind = question.get("type", "text")
    low, high = question.get("min"), question.get("max")
    if kind in ("text", "textarea", "password"):
        if not isinstance(value, str):
            raise SurveyAnswerError(f"survey answer {variable!r} must be a string")
        size = len(value)
    elif kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise SurveyAnswerError(f"survey answer {variable!r} must be an integer")
        size = value
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise SurveyAnswerError(f"survey answer {variable!r} must be a number")
        size = value
    elif kind == "multiplechoice":
        if str(value) not in _choices(question):
            raise SurveyAnswerError(f"survey answer {variable!r} is not one of its choices")
        return value
    elif kind == "multiselect":
        if not isinstance(value, list) or not {str(v) for v in value} <= set(_choices(question)):
            raise SurveyAnswerError(f"survey answer {variable!r} must be a list of its choices")
        return value
    else:
        raise SurveyAnswerError(f"survey question {variable!r} has unknown type {kind!r}")
    if isinstance(low, int | float) and size < low:
        raise SurveyAnswerError(f"survey answer {variable!r} is below its minimum {low}")
    if isinstance(high, int | float) and size > high:
        raise SurveyAnswerError(f"survey answer {variable!r} is above its maximum {high}")
    return value


def survey_answers(spec: Mapping[str, Any], given: Mapping[str, Any]) -> dict[str, Any]:
    """The survey's variables from ``given``, defaults filled in; the rest dropped."""
    answers: dict[str, Any] = {}
    for question in spec.get("spec", []) or []:
        variable = question.get("variable")
        if not variable:
            continue
        if variable in given:
            answers[variable] = _check(question, given[variable])
        elif question.get("default") not in (None, ""):
            answers[variable] = question["default"]
        elif question.get("required", False):
            raise UserInputRequired(variable)
    return answers


def password_variables(spec: Mapping[str, Any]) -> frozenset[str]:
    """The variables of the survey's password questions: their answers are never shown."""
    return frozenset(q["variable"] for q in spec.get("spec", []) or [] if q.get("type") == "password"
                     and q.get("variable"))
