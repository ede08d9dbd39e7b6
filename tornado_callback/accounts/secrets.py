"""Encryption at rest for credential secrets (Fernet from ``cryptography``).

The key comes from the ``secret_key`` setting (TORNADO_CALLBACK_SECRET_KEY)
or, failing that, from a key file created on first use with mode 0600. Every
process and machine that shares a database must share the key: with
PostgreSQL and several machines, set the setting (or copy the file).
"""

from __future__ import annotations

import base64
import os
import stat
import threading
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tornado_callback.config import ConfigError

# What the API shows in place of a stored secret (AWX's marker); sent back unchanged, it keeps the secret.
ENCRYPTED = "$encrypted$"


class SecretsUnreadable(Exception):
    """A stored secret cannot be decrypted with this key (another key made it)."""


def read_or_create_key_file(path: Path) -> bytes:
    """The key in ``path``; a new one if the file does not exist yet.

    Created beside the final name and hard-linked into place, so two processes
    starting together agree on one key and nobody reads a half-written file.
    """
    try:
        return _read_key_file(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(Fernet.generate_key() + b"\n")
        try:
            os.link(partial, path)
        except FileExistsError:
            pass  # another process won the race: use its key
    finally:
        partial.unlink(missing_ok=True)
    return _read_key_file(path)


def _read_key_file(path: Path) -> bytes:
    with open(path, "rb") as f:
        mode = os.fstat(f.fileno()).st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(f"secret key file {path} is readable by others: chmod 600 it")
        return f.read().strip()


class SecretsBox:
    """Encrypts and decrypts secret fields; the key is loaded on first use."""

    def __init__(self, key: str | None, key_file: Path) -> None:
        self._key = key
        self._key_file = key_file
        self._fernet: Fernet | None = None
        self._loaded_key = b""
        self._lock = threading.Lock()

    def _key_material(self) -> bytes:
        """The key's 32 bytes (read, or created, on first use)."""
        self._cipher()
        return base64.urlsafe_b64decode(self._loaded_key)

    def _cipher(self) -> Fernet:
        with self._lock:
            if self._fernet is None:
                key = self._key.encode() if self._key else read_or_create_key_file(self._key_file)
                try:
                    self._fernet = Fernet(key)
                    self._loaded_key = key
                except ValueError as e:
                    raise ConfigError(
                        "secret key must be 32 url-safe base64-encoded bytes "
                        "(make one with: python -c 'from cryptography.fernet import Fernet; "
                        "print(Fernet.generate_key().decode())')"
                    ) from e
            return self._fernet

    def derived_key(self, purpose: str) -> bytes:
        """A key for ``purpose`` (e.g. signing the console's cookies) derived from the secret key with
        HKDF: the same on every process and machine that shares the key, and telling nothing of it."""
        return HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                    info=f"tornado-callback {purpose}".encode()).derive(self._key_material())

    def encrypt(self, secret: str | None) -> bytes | None:
        if not secret:
            return None
        return self._cipher().encrypt(secret.encode())

    def decrypt(self, token: bytes | None) -> str | None:
        if not token:
            return None
        try:
            return self._cipher().decrypt(token).decode()
        except InvalidToken as e:
            raise SecretsUnreadable("a stored secret was encrypted with another key") from e
