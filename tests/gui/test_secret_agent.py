"""The secret agent against a real Secret Service (gnome-keyring on a private session bus),
run as an unprivileged user. NetworkManager's side of the calls is played by agent_probe.py;
the keyring's side is checked with libsecret's secret-tool, independently of our code."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.gui.desktop_session import DesktopSession

UUID = "7c1f0c0e-4f7e-4f43-9c57-1b2a3c4d5e6f"
USER = "nobody"

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0 or not all(shutil.which(p) for p in ("gnome-keyring-daemon", "dbus-daemon",
                                                          "secret-tool", "setpriv")),
    reason="needs root (to run the session as another user), gnome-keyring, dbus-daemon, "
           "secret-tool (libsecret-tools)")


@pytest.fixture
def session():
    folder = tempfile.mkdtemp(prefix="cygnet-agent-")
    os.chmod(folder, 0o755)
    try:
        with DesktopSession(Path(folder) / "session", user=USER) as desktop:
            try:
                desktop.python_argv = desktop.python()
            except PermissionError as error:
                pytest.skip(str(error))
            yield desktop
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def probe(session, *args, stdin=None):
    result = session.run([*session.python_argv, "-m", "tests.gui.agent_probe", *args], input=stdin,
                         cwd=str(Path(__file__).resolve().parents[2]))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def keyring_lookup(session):
    result = session.run(["secret-tool", "lookup", "service", "cygnet", "username", f"nm-{UUID}"])
    return result.stdout if result.returncode == 0 else None


def test_get_secrets_reads_the_keyring(session):
    stored = session.run(["secret-tool", "store", "--label=Cygnet office", "service", "cygnet",
                          "username", f"nm-{UUID}"], input="correct horse")
    assert stored.returncode == 0, stored.stderr
    assert probe(session, "get", UUID) == {"secrets": {"vpn": {"secrets": {"password": "correct horse"}}}}


def test_no_password_stored_and_no_interaction_is_no_secrets(session):
    assert probe(session, "get", UUID) == {"error": "org.freedesktop.NetworkManager.SecretAgent.NoSecrets"}


def test_request_new_does_not_hand_back_the_stored_password(session):
    session.run(["secret-tool", "store", "--label=x", "service", "cygnet", "username", f"nm-{UUID}"],
                input="wrong one")
    assert probe(session, "get", UUID, "--flags", "2")["error"].endswith("NoSecrets")


def test_other_vpn_types_are_not_ours(session):
    result = probe(session, "get", UUID, "--service-type", "org.freedesktop.NetworkManager.strongswan")
    assert result == {"error": "org.freedesktop.NetworkManager.SecretAgent.NoSecrets"}


def test_save_and_delete_secrets_go_to_the_keyring(session):
    assert probe(session, "save", UUID, stdin="s3cret-pw") == {"done": True}
    assert keyring_lookup(session) == "s3cret-pw"
    assert probe(session, "delete", UUID) == {"done": True}
    assert keyring_lookup(session) is None


def test_prompt_when_the_keyring_is_empty_and_remember_stores_it(session):
    result = probe(session, "get", UUID, "--flags", "1", "--answer", "typed pw", "--remember")
    assert result == {"prompts": [{"id": "office", "retry": False}],
                      "secrets": {"vpn": {"secrets": {"password": "typed pw"}}}}
    assert keyring_lookup(session) == "typed pw"
    # Next time the keyring answers; nobody is asked.
    assert probe(session, "get", UUID, "--flags", "1", "--answer", "unused") == \
        {"secrets": {"vpn": {"secrets": {"password": "typed pw"}}}}


def test_after_a_refused_password_ask_again_and_forget_the_old_one_unless_remembered(session):
    session.run(["secret-tool", "store", "--label=x", "service", "cygnet", "username", f"nm-{UUID}"],
                input="old wrong")
    result = probe(session, "get", UUID, "--flags", str(1 | 2), "--answer", "new pw")
    assert result["prompts"] == [{"id": "office", "retry": True}]
    assert result["secrets"]["vpn"]["secrets"]["password"] == "new pw"
    assert keyring_lookup(session) is None


def test_cancelled_prompt_is_user_canceled(session):
    result = probe(session, "get", UUID, "--flags", "1", "--answer", "")
    assert result == {"error": "org.freedesktop.NetworkManager.SecretAgent.UserCanceled"}


def test_ssh_agent_method_gets_the_session_s_agent_socket(session):
    # NetworkManager-strongswan's `agent` method: the secret is the user's SSH_AUTH_SOCK
    answer = probe(session, "get", UUID, "--method", "agent", "--ssh-auth-sock", "/run/user/65534/ssh")
    assert answer == {"secrets": {"vpn": {"secrets": {"agent": "/run/user/65534/ssh"}}}}
    assert probe(session, "get", UUID, "--method", "agent") == {
        "error": "org.freedesktop.NetworkManager.SecretAgent.NoSecrets"}
