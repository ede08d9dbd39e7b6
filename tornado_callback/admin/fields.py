"""Field declarations of the admin API: how one attribute is parsed, rendered and documented.

One declaration serves three readers: the service validates request bodies
with ``parse``, renders objects with ``render``, and the OpenAPI document
describes both with ``schema``. Messages follow Django REST framework's, which
AWX clients show to people.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any

from tornado_callback.accounts.credentials import ASK
from tornado_callback.accounts.secrets import ENCRYPTED
from tornado_callback.errors import ServiceError
from tornado_callback.http.values import INT_MAX, api_datetime
from tornado_callback.jobs.extra_vars import ExtraVarsError, parse_variables


class ValidationError(ServiceError):
    """Field errors as DRF shows them: ``{"field": ["message", ...]}``."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__(errors)
        self.errors = errors

    @classmethod
    def one(cls, name: str, message: str) -> ValidationError:
        return cls({name: [message]})


class Invalid(ValueError):
    """One value's problem; the caller files it under the field's name."""


def integer_text(text: str) -> int:
    """An integer from query or path text. Short: Python refuses to convert
    thousands of digits, and no id or count here has more than ten."""
    if not re.fullmatch(r"-?[0-9]{1,12}", text):
        raise Invalid("A valid integer is required.")
    return int(text)


def storable_text(value: str) -> str:
    """Text both databases can store: UTF-8 encodable and without NUL (PostgreSQL refuses it)."""
    if "\x00" in value:
        raise Invalid("Null characters are not allowed.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise Invalid("Not valid Unicode text.") from e
    return value


def masked(value: Any) -> str:
    """What a hidden value reads back as: whether it is set, never its text."""
    return ENCRYPTED if value else ""


@dataclass(frozen=True)
class Field:
    """An attribute of a resource. ``attr`` is the model attribute (default: ``name``)."""

    name: str
    required: bool = False
    read_only: bool = False
    write_only: bool = False
    # Set on create, fixed afterwards (e.g. a host's inventory).
    create_only: bool = False
    default: Any = None
    help: str = ""
    attr_name: str = ""
    # The action on the object (``change``...) a caller must be allowed to read the
    # value; others see only whether it is set, as with a Secret (a template's callback key).
    shown_to: str = ""

    @property
    def attr(self) -> str:
        return self.attr_name or self.name

    @property
    def description(self) -> str:
        if not self.shown_to:
            return self.help
        note = f"Callers who may not {self.shown_to} the object read {ENCRYPTED} when it is set."
        return f"{self.help} {note}".lstrip()

    def parse(self, value: Any) -> Any:
        raise NotImplementedError

    def render(self, value: Any) -> Any:
        return value

    def value_schema(self) -> dict[str, Any]:
        raise NotImplementedError

    def schema(self) -> dict[str, Any]:
        schema = self.value_schema()
        if self.description:
            schema["description"] = self.description
        return schema

    def parse_filter(self, text: str) -> Any:
        """A list filter's query-string value (``?name=web1``) as a column value."""
        return self.parse(text)


@dataclass(frozen=True)
class String(Field):
    max_length: int = 512
    allow_blank: bool = True
    default: Any = ""

    def parse(self, value: Any) -> str:
        if not isinstance(value, str):
            raise Invalid("Not a valid string.")
        if not value and not self.allow_blank:
            raise Invalid("This field may not be blank.")
        if len(value) > self.max_length:
            raise Invalid(f"Ensure this field has no more than {self.max_length} characters.")
        return storable_text(value)

    def value_schema(self) -> dict[str, Any]:
        schema: dict[str, Any] = {"type": "string", "maxLength": self.max_length}
        if not self.allow_blank:
            schema["minLength"] = 1
        return schema


@dataclass(frozen=True)
class Choice(Field):
    choices: tuple[str, ...] = ()

    def parse(self, value: Any) -> str:
        if not isinstance(value, str) or value not in self.choices:
            raise Invalid(f'"{value}" is not a valid choice.')
        return value

    def value_schema(self) -> dict[str, Any]:
        return {"type": "string", "enum": list(self.choices)}


@dataclass(frozen=True)
class Integer(Field):
    minimum: int = 0
    maximum: int = INT_MAX
    default: Any = 0

    def parse(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid("A valid integer is required.")
        if value < self.minimum:
            raise Invalid(f"Ensure this value is greater than or equal to {self.minimum}.")
        if value > self.maximum:
            raise Invalid(f"Ensure this value is less than or equal to {self.maximum}.")
        return value

    def parse_filter(self, text: str) -> int:
        return self.parse(integer_text(text))

    def value_schema(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": self.minimum, "maximum": self.maximum}


@dataclass(frozen=True)
class Boolean(Field):
    default: Any = False

    def parse(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise Invalid("Must be a valid boolean.")
        return value

    def parse_filter(self, text: str) -> bool:
        lowered = text.lower()
        if lowered not in ("true", "false", "1", "0"):
            raise Invalid("Must be a valid boolean.")
        return lowered in ("true", "1")

    def value_schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


@dataclass(frozen=True)
class Variables(Field):
    """Ansible variables: an object, or text holding JSON or YAML; shown as JSON text, as AWX does."""

    default: Any = field(default_factory=dict)

    def parse(self, value: Any) -> dict[str, Any]:
        try:
            parsed = parse_variables(value)
        except ExtraVarsError as e:
            raise Invalid(str(e).replace("extra_vars", "Variables")) from e
        # Lone surrogates and NUL (JSON escapes allow both) cannot be written out as
        # UTF-8 text for ansible: refuse them now rather than when a job runs.
        storable_text(json.dumps(parsed, ensure_ascii=False).replace("\\u0000", "\x00"))
        return parsed

    def render(self, value: Any) -> str:
        return json.dumps(value or {}, indent=2) if value else ""

    def value_schema(self) -> dict[str, Any]:
        return {"oneOf": [{"type": "object"}, {"type": "string"}]}

    def schema(self) -> dict[str, Any]:
        # What is written may be an object; what is read back is always text.
        return {"type": "string", **({"description": self.description} if self.description else {})}

    def input_schema(self) -> dict[str, Any]:
        return {**self.value_schema(), **({"description": self.description} if self.description else {})}


@dataclass(frozen=True)
class ForeignKey(Field):
    """The id of another resource. ``role`` is what the caller needs on it to link to it."""

    resource: str = ""
    role: str = "read"
    nullable: bool = False

    def parse(self, value: Any) -> int | None:
        if value is None and self.nullable:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= INT_MAX:
            raise Invalid(f'Invalid pk "{value}" - object does not exist.')
        return value

    def parse_filter(self, text: str) -> int | None:
        if text.lower() in ("null", "none") and self.nullable:
            return None
        return self.parse(integer_text(text))

    def value_schema(self) -> dict[str, Any]:
        return {"type": "integer", "minimum": 1, "maximum": INT_MAX, "nullable": self.nullable}


@dataclass(frozen=True)
class Secret(String):
    """Text that is never read back: shown as ``$encrypted$`` when set (or, with
    ``write_only``, not shown at all, like a user's password)."""

    max_length: int = 65536

    def render(self, value: Any) -> str:
        return masked(value)

    def parse_filter(self, text: str) -> Any:
        raise Invalid("Secrets cannot be filtered on.")


@dataclass(frozen=True)
class PrivateKey(Secret):
    """An SSH private key, PEM or OpenSSH: anything else is refused now rather than
    failing the jobs that would use it. ``ASK`` and ``$encrypted$`` keep their meaning."""

    def parse(self, value: Any) -> str:
        text = super().parse(value)
        if text in ("", ASK, ENCRYPTED) or "PRIVATE KEY-----" in text:
            return text
        raise Invalid("Not a PEM or OpenSSH private key.")


@dataclass(frozen=True)
class DateTime(Field):
    read_only: bool = True

    def render(self, value: dt.datetime | None) -> str | None:
        return api_datetime(value)

    def value_schema(self) -> dict[str, Any]:
        return {"type": "string", "format": "date-time", "nullable": True}


@dataclass(frozen=True)
class Data(Field):
    """Read-only structured data (lists, objects) described by a given JSON schema."""

    read_only: bool = True
    json_schema: tuple[tuple[str, Any], ...] = (("type", "object"),)

    def value_schema(self) -> dict[str, Any]:
        return dict(self.json_schema)
