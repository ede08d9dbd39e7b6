"""Sealing credential secrets for storage: the one interface credentials use.

``FernetSealer`` (cryptography's Fernet: AES-128-CBC + HMAC-SHA256) is keyed by
the ``secret_key`` setting. Without a key, secrets are refused rather than
stored in clear text.
"""

from __future__ import annotations

from typing import Protocol

from cryptography.fernet import Fernet, InvalidToken

from tornado_callback.config import ConfigError


class Sealer(Protocol):
    def seal(self, text: str) -> bytes:
        """``text`` encrypted and authenticated, for a LargeBinary column."""

    def unseal(self, sealed: bytes) -> str:
        """The text back; raises ``ValueError`` for a token this key did not seal."""


class SealingUnavailable(ValueError):
    """No secret key is configured, so no secret can be stored."""


class FernetSealer:
    def __init__(self, key: str) -> None:
        try:
            self._fernet = Fernet(key.encode())
        except ValueError as e:
            raise ConfigError(
                "secret_key must be a Fernet key (32 url-safe base64-encoded bytes), e.g. from "
                "python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())'"
            ) from e

    def seal(self, text: str) -> bytes:
        return self._fernet.encrypt(text.encode("utf-8"))

    def unseal(self, sealed: bytes) -> str:
        try:
            return self._fernet.decrypt(sealed).decode("utf-8")
        except InvalidToken as e:
            raise ValueError("a secret sealed with another key") from e


class NoSealer:
    def seal(self, text: str) -> bytes:
        raise SealingUnavailable("Secrets cannot be stored: no secret_key is configured "
                                 "(TORNADO_CALLBACK_SECRET_KEY).")

    def unseal(self, sealed: bytes) -> str:
        raise SealingUnavailable("no secret_key is configured")


def make_sealer(key: str | None) -> Sealer:
    return FernetSealer(key) if key else NoSealer()
