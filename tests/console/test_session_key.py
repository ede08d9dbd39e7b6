"""The console's cookies are signed with a key derived from the server's secret key (issue 20): every
process and machine that shares the secret key (or its file) accepts the others' sessions."""

from __future__ import annotations

from cryptography.fernet import Fernet

from tornado_callback.accounts.secrets import SecretsBox


def test_the_derived_key_is_the_same_wherever_the_secret_key_is(tmp_path):
    key = Fernet.generate_key().decode()
    one, other = SecretsBox(key, tmp_path / "unused"), SecretsBox(key, tmp_path / "unused")
    assert one.derived_key("console session cookie") == other.derived_key("console session cookie")
    assert len(one.derived_key("console session cookie")) == 32
    # Another purpose, or another server's key, gives another key; none is the secret key itself.
    assert one.derived_key("console session cookie") != one.derived_key("something else")
    assert one.derived_key("console session cookie") != SecretsBox(
        Fernet.generate_key().decode(), tmp_path / "unused").derived_key("console session cookie")
    assert key.encode() not in one.derived_key("console session cookie")


def test_processes_sharing_a_key_file_derive_the_same_key(tmp_path):
    first = SecretsBox(None, tmp_path / "tornado-callback.key").derived_key("console session cookie")
    assert (tmp_path / "tornado-callback.key").exists()
    again = SecretsBox(None, tmp_path / "tornado-callback.key").derived_key("console session cookie")
    assert first == again
