"""Failure notifications say why in plain words: by the failure's kind (the token Cygnet's
plugin sends in its Failed signal), else by NetworkManager's codes; never by the message's words."""

from __future__ import annotations

import pytest

from client.failure import FailureKind
from gui import failures as f

AUTH, IDENTITY, UNREACHABLE = "authentication", "identity-mismatch", "gateway-unreachable"


@pytest.mark.parametrize("reason,plugin,message,kind,headline", [
    (f.REASON_LOGIN_FAILED, f.PLUGIN_LOGIN_FAILED, "", None, f.WRONG_PASSWORD),
    (f.REASON_SERVICE_STOPPED, f.PLUGIN_LOGIN_FAILED,
     "authentication failed: wrong password (EAP-MSCHAPv2 error 691)", AUTH, f.WRONG_PASSWORD),
    (f.REASON_LOGIN_FAILED, f.PLUGIN_LOGIN_FAILED,
     "authentication failed: the gateway's certificate is not trusted", IDENTITY, f.CERTIFICATE),
    (f.REASON_LOGIN_FAILED, f.PLUGIN_LOGIN_FAILED,
     "authentication failed: identity mismatch (we are carol, asking for the gateway vpn.example)",
     IDENTITY, f.CERTIFICATE),
    (f.REASON_SERVICE_STOPPED, f.PLUGIN_CONNECT_FAILED, "tunnel lost: gateway unreachable", UNREACHABLE,
     f.UNREACHABLE),
    (f.REASON_CONNECT_TIMEOUT, None, "", None, f.UNREACHABLE),
    (f.REASON_SERVICE_STOPPED, f.PLUGIN_CONNECT_FAILED, "", None, f.UNREACHABLE),
    (f.REASON_SERVICE_START_FAILED, None, "", None, f.PLUGIN_MISSING),
    (f.REASON_NO_SECRETS, None, "", None, f.NO_SECRETS),
    (f.REASON_UNKNOWN, None, "", None, f.REFUSED),
])
def test_explain(reason, plugin, message, kind, headline):
    text = f.explain(reason, plugin, message, kind)
    assert text.splitlines()[0] == headline
    if message:
        assert text.splitlines()[1] == message


def test_user_disconnect_is_not_a_failure():
    assert not f.is_failure(f.REASON_USER_DISCONNECTED)
    assert f.is_failure(f.REASON_LOGIN_FAILED) and f.is_failure(f.REASON_SERVICE_STOPPED)


def test_every_kind_has_its_own_words():
    assert set(f.BY_KIND) == set(FailureKind) - {FailureKind.STOPPED}  # stopping is no failure


def test_the_kind_decides_not_the_words_of_the_message():
    # A message full of words that used to steer the headline: the kind wins.
    text = f.explain(f.REASON_SERVICE_STOPPED, f.PLUGIN_LOGIN_FAILED,
                     "eap refused: certificate identity timed out", "proposal-mismatch")
    assert text.splitlines()[0] == "The gateway accepted none of the proposed algorithms."
    # Without a kind the words mean nothing: NetworkManager's codes decide.
    assert f.explain(f.REASON_SERVICE_STOPPED, f.PLUGIN_CONNECT_FAILED,
                     "authentication failed: wrong password").splitlines()[0] == f.UNREACHABLE


def test_an_unknown_kind_token_falls_back_to_the_codes():
    assert f.explain(f.REASON_LOGIN_FAILED, f.PLUGIN_LOGIN_FAILED, "", "from-a-newer-plugin") == f.WRONG_PASSWORD
