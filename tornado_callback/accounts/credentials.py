"""SSH credentials: stored with their secrets encrypted, decrypted only to run a job.

They are written through the admin service (``/api/v2/credentials/``, whose
declaration in ``admin/catalog.py`` seals the secrets); secrets leave the store
in clear text only here, as ``SshSecrets`` handed to the executor.
"""

from __future__ import annotations

from dataclasses import dataclass

from tornado_callback.accounts.secrets import SecretsBox
from tornado_callback.store.models import Credential

# AWX's marker for "ask when launching": a callback host cannot answer, so the
# launch service refuses such templates ("user input required").
ASK = "ASK"
BECOME_METHODS = ("", "sudo", "su", "pbrun", "pfexec", "doas", "dzdo", "ksu", "runas", "machinectl")


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
    def __init__(self, box: SecretsBox) -> None:
        self.box = box

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
