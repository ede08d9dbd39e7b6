"""Users, passwords, tokens and roles.

Passwords are argon2 hashes, verified off the event loop (argon2 is slow on
purpose). Tokens are random and stored as SHA-256 so that a bearer header is
found by index. Neither a password nor a token is ever logged or returned
after creation.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from tornado_callback.accounts.ratelimit import FailureLimiter
from tornado_callback.errors import NotFound, PermissionDenied
from tornado_callback.store import queries
from tornado_callback.store.database import Database
from tornado_callback.store.models import RoleAssignment, Token, User
from tornado_callback.store.queries import TokenPrincipal
from tornado_callback.store.read_cache import ReadCache

# Roles on a resource imply the weaker ones, as in AWX.
ROLE_IMPLIES = {
    "job_template": {"admin": {"admin", "execute", "read"}, "execute": {"execute", "read"}, "read": {"read"}},
    "inventory": {"admin": {"admin", "use", "read"}, "use": {"use", "read"}, "read": {"read"}},
}


MAX_USERNAME = 150  # the users table's limit


def roles_granting(resource_type: str, role: str) -> frozenset[str]:
    """The held roles that imply ``role`` (e.g. admin and execute imply read)."""
    return frozenset(held for held, implied in ROLE_IMPLIES[resource_type].items() if role in implied)


class AccountError(ValueError):
    """A user or token request that cannot be carried out (the message says why)."""


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of an admin request."""

    id: int
    username: str
    is_superuser: bool


# Who runs the command line: the server's administrator, by access to its host and database.
LOCAL_ADMIN = Principal(id=0, username="(command line)", is_superuser=True)


def _seal(password_hash: str | None, key: bytes) -> str:
    return hmac.new(key, (password_hash or "").encode(), hashlib.sha256).hexdigest()[:32]


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh token's text (shown once) and the hash that is stored."""
    token = secrets.token_urlsafe(32)
    return token, token_hash(token)


class Accounts:
    def __init__(self, db: Database, limiter: FailureLimiter, cache_seconds: float = 60.0) -> None:
        self.db = db
        self.limiter = limiter
        self.hasher = PasswordHasher()
        self._dummy: str | None = None
        self.cache_seconds = cache_seconds
        # digest of verified "user:password" -> (principal, expiry). The digest
        # is keyed with a per-process secret so the cache holds no usable secret.
        self._verified: dict[bytes, tuple[Principal, float]] = {}
        self._cache_key = secrets.token_bytes(32)
        self._tokens: ReadCache[TokenPrincipal] = ReadCache(db, {"tokens", "users"})
        self._roles: ReadCache[frozenset[str]] = ReadCache(db, {"role_assignments", "users"})

    async def hash_password(self, password: str) -> str:
        return await asyncio.to_thread(self.hasher.hash, password)

    async def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return await asyncio.to_thread(self.hasher.verify, password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    async def create_user(self, username: str, password: str | None, superuser: bool = False) -> User:
        if not username or len(username) > MAX_USERNAME:
            raise AccountError(f"a user name must be 1 to {MAX_USERNAME} characters")
        async with self.db.session() as session:
            if await queries.user_by_name(session, username) is not None:
                raise AccountError(f"user {username!r} already exists")
            user = User(
                username=username,
                is_superuser=superuser,
                password_hash=await self.hash_password(password) if password else None,
            )
            session.add(user)
            await session.commit()
            return user

    async def set_password(self, username: str, password: str) -> None:
        async with self.db.session() as session:
            user = await queries.user_by_name(session, username)
            if user is None:
                raise AccountError(f"no user {username!r}")
            user.password_hash = await self.hash_password(password)
            await session.commit()
        self.forget_verified()

    def forget_verified(self) -> None:
        """Drop cached logins: a changed password, or a changed or deleted user, counts at once."""
        self._verified.clear()

    async def create_token(self, username: str, description: str = "") -> str:
        """A new personal token for ``username``; the only time its text is seen."""
        token, digest = new_token()
        async with self.db.session() as session:
            user = await queries.user_by_name(session, username)
            if user is None:
                raise AccountError(f"no user {username!r}")
            session.add(Token(user_id=user.id, token_hash=digest, description=description))
            await session.commit()
        return token

    async def grant(self, username: str, resource_type: str, resource_id: int, role: str) -> None:
        if role not in ROLE_IMPLIES.get(resource_type, {}):
            raise AccountError(f"unknown role {role!r} for {resource_type}")
        async with self.db.session() as session:
            user = await queries.user_by_name(session, username)
            if user is None:
                raise AccountError(f"no user {username!r}")
            if role not in await self.db.read(queries.user_roles, user.id, resource_type, resource_id):
                session.add(RoleAssignment(
                    user_id=user.id, resource_type=resource_type, resource_id=resource_id, role=role
                ))
                await session.commit()

    async def authenticate(
        self, authorization: str | None, client_address: Callable[[], str] | None = None
    ) -> Principal | None:
        """The principal of an ``Authorization`` header (Basic or Bearer), or None.

        Raises TooManyRequests past a limit on failed logins (ratelimit.py): per
        user name and, over HTTP, per ``client_address()``, asked only for a
        password (a token, 256 random bits, cannot be guessed).
        """
        if not authorization:
            return None
        scheme, _, credentials = authorization.strip().partition(" ")
        scheme = scheme.lower()
        credentials = credentials.strip()
        if scheme == "basic":
            return await self._basic(credentials, client_address)
        if scheme == "bearer" and credentials:
            return await self._bearer(credentials)
        return None

    async def _basic(self, credentials: str, client_address: Callable[[], str] | None) -> Principal | None:
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        username, sep, password = decoded.partition(":")
        if not sep:
            return None
        return await self.login(username, password, client_address)

    async def login(
        self, username: str, password: str, client_address: Callable[[], str] | None = None
    ) -> Principal | None:
        """The principal of a user name and password (Basic auth, the console's login form), or None;
        under the same limits on failed logins as ``authenticate``."""
        if len(username) > MAX_USERNAME:
            return None  # no user has that name: there is nothing to guess
        decoded = f"{username}:{password}"
        limits = self.limiter.limits
        subjects = [(limits.login_per_user, username)]
        if client_address is not None:
            subjects.append((limits.login_per_address, client_address()))
        # Checked before the cache too: past the limit, no answer may tell a right password from a wrong one.
        async with self.limiter.attempt(subjects) as login:
            digest = hmac.new(self._cache_key, decoded.encode(), hashlib.sha256).digest()
            cached = self._verified.get(digest)
            now = time.monotonic()
            if cached and cached[1] > now:
                return cached[0]
            async with self.db.session() as session:
                user = await queries.user_by_name(session, username)
            stored = user.password_hash if user is not None else None
            # A user name that does not exist (or has no password) costs what a wrong password
            # costs: answering at once would tell which names exist.
            verified = await self._verify(stored or await self._dummy_hash(), password)
            if user is None or not stored or not verified:
                login.failed()
                return None
        principal = Principal(user.id, user.username, user.is_superuser)
        if len(self._verified) > 10_000:
            self._verified.clear()
        self._verified[digest] = (principal, now + self.cache_seconds)
        return principal

    async def session_seal(self, user_id: int, key: bytes) -> str | None:
        """What a console session of this user is bound to (their password, through ``key``),
        so that a new password ends every session opened with the old one."""
        async with self.db.session() as session:
            user = await session.get(User, user_id)
        return None if user is None else _seal(user.password_hash, key)

    async def session_principal(self, user_id: int, seal: str, key: bytes) -> Principal | None:
        """The user a console session names, None once deleted or given a new password."""
        async with self.db.session() as session:
            user = await session.get(User, user_id)
        if user is None or not hmac.compare_digest(seal, _seal(user.password_hash, key)):
            return None
        return Principal(user.id, user.username, user.is_superuser)

    async def _dummy_hash(self) -> str:
        """A hash of a password no one knows, made as the users' are, to verify unknown users against."""
        if self._dummy is None:
            self._dummy = await self.hash_password(secrets.token_urlsafe(32))
        return self._dummy

    async def _bearer(self, token: str) -> Principal | None:
        digest = token_hash(token)
        row = await self._tokens.get(digest, lambda: self.db.read(queries.token_principal, digest))
        if row is None:
            return None
        if row.expires is not None and row.expires.timestamp() < time.time():
            return None
        return Principal(row.id, row.username, row.is_superuser)

    async def has_role(
        self, principal: Principal, resource_type: str, resource_id: int, role: str
    ) -> bool:
        if principal.is_superuser:
            return True
        key = (principal.id, resource_type, resource_id)
        held = await self._roles.get(
            key, lambda: self.db.read(queries.user_roles, principal.id, resource_type, resource_id))
        return bool(held and held & roles_granting(resource_type, role))

    async def require_role(
        self, principal: Principal, resource_type: str, resource_id: int, role: str
    ) -> None:
        """Raise unless the caller holds ``role``: 404 when it holds no role at all on the
        object, exactly as for a missing one (ids cannot be probed), 403 when it may see it."""
        if await self.has_role(principal, resource_type, resource_id, role):
            return
        if role != "read" and await self.has_role(principal, resource_type, resource_id, "read"):
            raise PermissionDenied()
        raise NotFound()
