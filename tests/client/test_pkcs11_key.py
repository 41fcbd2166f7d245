"""Signing IKE AUTH payloads (RFC 7427, RFC 7296 §3.8) with a key that stays on a real
SoftHSM2 token through PKCS#11 (client/pkcs11_key.py); ike/auth.py verifies."""

from __future__ import annotations

import pytest

from testbed import softhsm

pytestmark = pytest.mark.skipif(not softhsm.available(), reason="softhsm2 is not installed")

PIN = "246810"


@pytest.fixture(autouse=True)
def logged_out():
    from client.pkcs11_key import close_all

    yield
    close_all()


@pytest.fixture(scope="module")
def token(pki, tmp_path_factory):
    import os

    token = softhsm.SoftToken.create(tmp_path_factory.mktemp("token"), pki, PIN)
    token.add_key("rsa", "card-rsa", b"\x01")
    token.add_key("ec", "card-ec", b"\x02")
    # SoftHSM reads its configuration once per process: the only token loaded in this one
    old = os.environ.get("SOFTHSM2_CONF")
    os.environ["SOFTHSM2_CONF"] = str(token.conf)
    yield token
    if old is None:
        os.environ.pop("SOFTHSM2_CONF", None)
    else:
        os.environ["SOFTHSM2_CONF"] = old


@pytest.mark.parametrize("label, rsa_pss", [("card-rsa", False), ("card-rsa", True),
                                            ("card-ec", False)])
@pytest.mark.parametrize("announced", [None, (2, 3, 4)])
def test_token_key_signs_auth_that_verifies(token, label, rsa_pss, announced):
    from client.pkcs11_key import open_key
    from ike.auth import Signer, verify_auth
    from ike.payloads import AUTH

    key, cert = open_key(softhsm.MODULE, softhsm.TOKEN_LABEL, label, None, PIN.encode())
    assert cert.subject.rfc4514_string().startswith(f"CN={label}@")
    with pytest.raises(TypeError, match="stays on the token"):
        key.private_bytes()
    octets = b"IKE_SA_INIT request | Nr | prf(SK_pi, IDi')"
    method, data = Signer(key, rsa_pss=rsa_pss).sign(octets, announced)
    verify_auth(AUTH(method, data), octets, cert)


def test_wrong_pin_and_missing_key_give_one_line(token):
    from client.pkcs11_key import TokenError, close_all, open_key

    close_all()
    with pytest.raises(TokenError, match="^wrong PIN for the token 'cygnet-test'$"):
        open_key(softhsm.MODULE, None, "card-ec", None, b"000000")
    with pytest.raises(TokenError, match="no private key with label nope"):
        open_key(softhsm.MODULE, None, "nope", None, PIN.encode())
    key, cert = open_key(softhsm.MODULE, None, None, b"\x02", PIN.encode())
    close_all()
    assert cert == open_key(softhsm.MODULE, None, "card-ec", None, PIN.encode())[1]
