"""Failure notifications say why in plain words."""

from __future__ import annotations

import pytest

from gui import failures as f


@pytest.mark.parametrize("reason,plugin,message,headline", [
    (f.REASON_LOGIN_FAILED, f.PLUGIN_LOGIN_FAILED, "", f.WRONG_PASSWORD),
    (f.REASON_SERVICE_STOPPED, f.PLUGIN_LOGIN_FAILED,
     "authentication failed: wrong password (EAP-MSCHAPv2 error 691)", f.WRONG_PASSWORD),
    (f.REASON_LOGIN_FAILED, f.PLUGIN_LOGIN_FAILED,
     "authentication failed: the gateway's certificate is not trusted", f.CERTIFICATE),
    (f.REASON_LOGIN_FAILED, f.PLUGIN_LOGIN_FAILED,
     "authentication failed: identity mismatch (we are carol, asking for the gateway vpn.example)", f.CERTIFICATE),
    (f.REASON_SERVICE_STOPPED, f.PLUGIN_CONNECT_FAILED, "tunnel lost: gateway unreachable", f.UNREACHABLE),
    (f.REASON_CONNECT_TIMEOUT, None, "", f.UNREACHABLE),
    (f.REASON_SERVICE_STOPPED, f.PLUGIN_CONNECT_FAILED, "", f.UNREACHABLE),
    (f.REASON_SERVICE_START_FAILED, None, "", f.PLUGIN_MISSING),
    (f.REASON_NO_SECRETS, None, "", f.NO_SECRETS),
    (f.REASON_UNKNOWN, None, "", f.REFUSED),
])
def test_explain(reason, plugin, message, headline):
    text = f.explain(reason, plugin, message)
    assert text.splitlines()[0] == headline
    if message:
        assert text.splitlines()[1] == message


def test_user_disconnect_is_not_a_failure():
    assert not f.is_failure(f.REASON_USER_DISCONNECTED)
    assert f.is_failure(f.REASON_LOGIN_FAILED) and f.is_failure(f.REASON_SERVICE_STOPPED)
