"""Fuzz target: NetworkManager's vpn.data and vpn.secrets (nm_plugin.vpn_data), as the root
NM service receives them in Connect().

The input is read as lines "key=value" (a line "[secrets]" switches to vpn.secrets), the
form of NM's keyfile. Allowed outcome besides success: VpnDataError (one line)."""
from __future__ import annotations

from dbus_fast import Variant

from nm_plugin.vpn_data import VpnDataError, activation_from_connection, needed_secret

SEEDS = [
    b"address=vpn.example.org\nmethod=psk\nuser=carol@example.org\nremote-identity=vpn.example.org\n"
    b"virtual=yes\ncygnet-ipv6=no\n[secrets]\npassword=a-long-pre-shared-key-123\n",
    b"address=vpn.example.org\nmethod=eap\nuser=alice\ncertificate=/etc/ssl/certs\ncygnet-eap-method=md5\n"
    b"proposal=yes\nike=aes256-sha256-modp2048\nesp=aes128gcm16\nencap=yes\nipcomp=no\n"
    b"cygnet-domains=example.org lab.example.org\npassword-flags=1\n[secrets]\npassword=secret\n",
    b"address=203.0.113.4\nmethod=cert\nusercert=/dev/zero\nuserkey=/dev/null\nlocal-identity=carol\n"
    b"remote-ts=10.0.0.0/8;fd00::/8\ncygnet-mtu=1400\ncygnet-dpd=30\n",
]


def _connection(data: bytes) -> dict:
    vpn_data: dict[str, str] = {}
    secrets: dict[str, str] = {}
    target = vpn_data
    # D-Bus strings are valid UTF-8 without NUL (dbus-daemon refuses anything else).
    for line in data.decode("utf-8", "replace").replace("\0", "").split("\n"):
        if line == "[secrets]":
            target = secrets
            continue
        key, _, value = line.partition("=")
        target[key] = value
    vpn = {"service-type": Variant("s", "org.freedesktop.NetworkManager.cygnet"),
           "data": Variant("a{ss}", vpn_data), "secrets": Variant("a{ss}", secrets)}
    return {"connection": {"id": Variant("s", "fuzz"), "uuid": Variant("s", "0b7e2c44-1111-2222-3333-444455556666")},
            "vpn": vpn}


def one_input(data: bytes) -> None:
    connection = _connection(data)
    needed_secret(connection)
    try:
        activation_from_connection(connection)
    except VpnDataError:
        pass
