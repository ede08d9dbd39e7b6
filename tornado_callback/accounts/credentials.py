"""SSH credentials: stored with their secrets encrypted, decrypted only to run a job.

The REST endpoints (``/api/v2/credentials/``) build on ``Credentials.create``;
secrets never leave this module in clear text except as ``SshSecrets`` handed
to the executor.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from tornado_callback.accounts.secrets import SecretsBox
from tornado_callback.store.database import Database
from tornado_callback.store.models import Credential

# AWX's marker for "ask when launching": a callback host cannot answer, so the
# launch service refuses such templates ("user input required").
ASK = "ASK"
BECOME_METHODS = frozenset({"", "sudo", "su", "pbrun", "pfexec", "doas", "dzdo", "ksu", "runas", "machinectl"})


class CredentialError(ValueError):
    """A credential request that cannot be carried out (the message says why)."""


@dataclass(frozen=True)
class SshSecrets:
    """What a run needs from a credential, in clear text, for the life of one run."""

    username: str
    ssh_key_data: str | None
    ssh_key_unlock: str | None
    password: str | None
    become_method: str
    become_username: str
    become_password: str | None

    def __repr__(self) -> str:  # never let a secret reach a log through repr()
        return f"SshSecrets(username={self.username!r}, ...)"


class Credentials:
    def __init__(self, db: Database, box: SecretsBox) -> None:
        self.db = db
        self.box = box

    async def create(
        self,
        name: str,
        *,
        username: str = "",
        ssh_key_data: str | None = None,
        ssh_key_unlock: str | None = None,
        password: str | None = None,
        become_method: str = "",
        become_username: str = "",
        become_password: str | None = None,
        description: str = "",
    ) -> Credential:
        if not name or len(name) > 512:
            raise CredentialError("a credential name must be 1 to 512 characters")
        if become_method not in BECOME_METHODS:
            raise CredentialError(f"unknown become_method {become_method!r}")
        if ssh_key_data and ssh_key_data != ASK and "PRIVATE KEY-----" not in ssh_key_data:
            raise CredentialError("ssh_key_data must be a PEM or OpenSSH private key")
        secrets = (ssh_key_data, ssh_key_unlock, password, become_password)
        async with self.db.session() as session:
            if await session.scalar(select(Credential.id).where(Credential.name == name)):
                raise CredentialError(f"credential {name!r} already exists")
            credential = Credential(
                name=name,
                description=description,
                kind="ssh",
                username=username,
                ssh_key_data=self.box.encrypt(ssh_key_data),
                ssh_key_unlock=self.box.encrypt(ssh_key_unlock),
                password=self.box.encrypt(password),
                become_method=become_method,
                become_username=become_username,
                become_password=self.box.encrypt(become_password),
                ask_at_launch=ASK in secrets,
            )
            session.add(credential)
            await session.commit()
            return credential

    def decrypt(self, credential: Credential) -> SshSecrets:
        return SshSecrets(
            username=credential.username,
            ssh_key_data=self.box.decrypt(credential.ssh_key_data),
            ssh_key_unlock=self.box.decrypt(credential.ssh_key_unlock),
            password=self.box.decrypt(credential.password),
            become_method=credential.become_method,
            become_username=credential.become_username,
            become_password=self.box.decrypt(credential.become_password),
        )
