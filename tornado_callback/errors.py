"""Errors that services raise and handlers render: each knows its status and JSON body.

Framework errors use ``detail`` (DRF's shape); callback refusals use ``msg`` (AWX's).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DETAIL_NOT_FOUND = "Not found."
DETAIL_FORBIDDEN = "You do not have permission to perform this action."
DETAIL_UNAUTHENTICATED = "Authentication credentials were not provided."


class ServiceError(Exception):
    status = 400

    def __init__(
        self, body: Mapping[str, Any], *, status: int | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(body)
        self.body = dict(body)
        if status is not None:
            self.status = status
        self.headers = dict(headers or {})

    @classmethod
    def detail(cls, text: str, **kwargs: Any) -> ServiceError:
        return cls({"detail": text}, **kwargs)

    def __str__(self) -> str:
        """One line for people (the command line prints it): the ``detail`` or ``msg``, else each
        field's messages after its name, as ``name: Names may not begin or end with spaces.``"""
        text = self.body.get("detail") or self.body.get("msg")
        if isinstance(text, str):
            return text
        return "; ".join(
            f"{name}: {' '.join(map(str, messages)) if isinstance(messages, list) else messages}"
            for name, messages in self.body.items()
        )


class NotFound(ServiceError):
    status = 404

    def __init__(self, text: str = DETAIL_NOT_FOUND) -> None:
        super().__init__({"detail": text})


class PermissionDenied(ServiceError):
    status = 403

    def __init__(self) -> None:
        super().__init__({"detail": DETAIL_FORBIDDEN})


class NotAuthenticated(ServiceError):
    status = 401

    def __init__(self, text: str = DETAIL_UNAUTHENTICATED) -> None:
        super().__init__({"detail": text})


class TooManyRequests(ServiceError):
    status = 429

    def __init__(self, retry_after: int, reason: str) -> None:
        super().__init__(
            {"detail": f"{reason} Try again in {retry_after} seconds."},
            headers={"Retry-After": str(retry_after)},
        )


class CallbackRefused(ServiceError):
    """AWX's 400 answers to a callback: ``{"msg": ...}`` plus extra fields."""

    def __init__(self, msg: str, **extra: Any) -> None:
        super().__init__({"msg": msg, **extra})
