"""The NM service (root) reads the files vpn.data names bounded and regular-only (issue 13 §3)."""
from __future__ import annotations

import os

import pytest

from nm_plugin.vpn_data import VpnDataError, activation_from_connection
from tests.nm.test_vpn_data import connection, make_certificate


def special_files(tmp_path):
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    huge = tmp_path / "huge.pem"
    with open(huge, "wb") as f:  # sparse: 64 MB that take no disk
        f.truncate(64 * 1024 * 1024)
    return {"/dev/zero": "not a regular file", str(fifo): "not a regular file",
            str(huge): "too large", str(tmp_path): "not a regular file"}


def write_key(path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)
    return path


@pytest.mark.timeout(60)  # before the fix a FIFO blocked forever, /dev/zero ran out of memory
@pytest.mark.parametrize("key", ["certificate", "usercert", "userkey"])
def test_special_or_huge_files_are_refused_by_name(tmp_path, key):
    cert = make_certificate(tmp_path / "cert.pem", "carol", ca=False)
    user_key = write_key(tmp_path / "key.pem")
    for bad, problem in special_files(tmp_path).items():
        if key == "certificate" and bad == str(tmp_path):
            continue  # a folder of CAs is a valid 'certificate'
        if key == "certificate":  # read at once to tell a CA from the gateway's certificate
            data = {"address": "vpn.example.org", "method": "eap", "user": "carol", "certificate": bad}
        else:  # eap-tls without local-identity reads usercert for our identity
            data = {"address": "vpn.example.org", "method": "eap-tls", "usercert": str(cert),
                    "userkey": str(user_key), key: bad}
        with pytest.raises(VpnDataError) as caught:
            activation_from_connection(connection(data, {"password": "secret"}))
        message = str(caught.value)
        assert "\n" not in message and f"'{key}'" in message and problem in message, message


def test_overlong_certificate_path_is_one_line():
    """Found by tests/fuzz/target_vpn_data.py: is_dir() raised ENAMETOOLONG."""
    data = {"address": "vpn.example.org", "method": "eap", "user": "carol",
            "certificate": "/etc/" + "x" * 300 + "/certs"}
    with pytest.raises(VpnDataError, match="'certificate': .* not a usable path: File name too long"):
        activation_from_connection(connection(data, {"password": "secret"}))
