"""Fuzz target: a TOML profile file, parsed and checked (client.profile), then written back.

Allowed outcome besides success: ProfileError (one line). A profile that is accepted must
survive profile_to_dict -> format_toml -> parse with the same meaning, as `cygnet import`
relies on."""
from __future__ import annotations

import tempfile
from pathlib import Path

from client.profile import ProfileError, format_toml, profile_from_bytes, profile_to_dict

_FOLDER = Path(tempfile.mkdtemp(prefix="cygnet-fuzz-profile-"))
# Files a profile may name, so that path keys get past "does not exist" too.
for _name in ("ca.pem", "cert.pem", "key.pem", "psk.txt"):
    (_FOLDER / _name).write_bytes(b"x")
_PATH = _FOLDER / "office.toml"

SEEDS = [
    b'gateway = "vpn.example.org"\nauth = "psk"\npsk_file = "psk.txt"\n',
    b'gateway = ["vpn1.example.org", "198.51.100.7"]\nport = 4500\nremote_id = "vpn.example.org"\n'
    b'auth = "eap-mschapv2"\neap_identity = "carol"\nca = "ca.pem"\nremote_ts = ["10.0.0.0/8", "fd00::/8"]\n'
    b'dpd = 10\nreauth = 3600\nmtu = 1400\ndns = false\nvirtual_ip = ["ipv4"]\n',
    b'name = "lab"\ngateway = "203.0.113.5"\nauth = "pubkey+eap-md5"\ncert = "cert.pem"\nkey = "key.pem"\n'
    b'local_id = "C=CH, O=Lab, CN=carol"\neap_identity = "carol"\nike = "aes256gcm16-prfsha384-x25519"\n'
    b'esp = "aes256gcm16,aes128-sha256-ecp256"\ndataplane = "userspace"\nencap = true\nkeyring = true\n',
    b'gateway = "vpn.example.org"\nauth = "eap-tls"\ncert = "cert.pem"\nkey = "key.pem"\nlocal_id = "x"\n'
    b'[extra]\nx = [[1, 2], {a = 1}]\n',
]


def one_input(data: bytes) -> None:
    try:
        profile = profile_from_bytes(data, _PATH)
    except ProfileError:
        return
    text = format_toml(profile_to_dict(profile, relative_to=_FOLDER))
    again = profile_from_bytes(text.encode("utf-8"), _PATH)
    if again != profile:
        raise AssertionError(f"written profile differs: {profile!r} -> {again!r}")
