"""The defaults of a survey's password questions, encrypted inside the stored survey.

The API never shows them (``$encrypted$``, as AWX does), and the database
holds them sealed by the shared ``SecretsBox`` as ``$encrypted$<Fernet token>``;
only a launch opens them, so that the job still receives the real default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tornado_callback.accounts.secrets import ENCRYPTED, SecretsBox


def is_password_default(question: Mapping[str, Any]) -> bool:
    return question.get("type") == "password" and question.get("default") not in (None, "")


def _is_sealed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(ENCRYPTED) and value != ENCRYPTED


def seal_password_defaults(
    spec: dict[str, Any], stored: Mapping[str, Any], box: SecretsBox
) -> dict[str, Any]:
    """The survey to store: password defaults encrypted; one sent back as ``$encrypted$`` keeps the stored one."""
    kept = {q.get("variable"): q["default"] for q in stored.get("spec", []) if is_password_default(q)}

    def seal(value: str) -> str:
        token = box.encrypt(value)
        assert token is not None  # value is not empty
        return ENCRYPTED + token.decode("ascii")

    def sealed(question: dict[str, Any]) -> dict[str, Any]:
        if not is_password_default(question):
            return question
        if question["default"] != ENCRYPTED:
            return {**question, "default": seal(question["default"])}
        value = kept.get(question["variable"], "")
        # Stored in clear text before defaults were encrypted: sealed now.
        return {**question, "default": value if not value or _is_sealed(value) else seal(value)}

    return {**spec, "spec": [sealed(q) for q in spec.get("spec", [])]} if spec else spec


def open_password_defaults(spec: Mapping[str, Any], box: SecretsBox) -> dict[str, Any]:
    """The stored survey with its password defaults decrypted, for a launch (raises ``SecretsUnreadable``)."""
    return {**spec, "spec": [
        {**q, "default": box.decrypt(q["default"][len(ENCRYPTED):].encode())}
        if is_password_default(q) and _is_sealed(q["default"]) else q
        for q in spec.get("spec", []) or []
    ]} if spec else {}
