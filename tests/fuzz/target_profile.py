"""Fuzz target: a TOML profile file, parsed and checked (client.profile), then written back.

Inputs starting with 0x01 skip the TOML parser: the bytes spell a table of known keys and
typed values for the checker (random TOML rarely gets past the parser). Allowed outcome
besides success: ProfileError (one line). A profile that is accepted must
survive profile_to_dict -> format_toml -> parse with the same meaning, as `cygnet import`
relies on."""
from __future__ import annotations

import tempfile
from pathlib import Path

from client.profile import (KNOWN_KEYS, ProfileError, format_toml, profile_from_bytes, profile_from_dict,
                            profile_to_dict)

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
    # Tables for the checker (see _table): key index, kind, value.
    bytes([1, 1, 0, 18, 5, 0, 0, 6, 0, 12, 15, 4, 2, 15, 16, 18, 30, 0, 0, 0, 0, 0, 0, 0, 30, 2, 30,
           0, 0, 0, 0, 0, 0, 17, 244]),
    bytes([1, 1, 0, 19, 5, 0, 4, 10, 0, 10, 11, 0, 11, 8, 1, 5]) + b"carol" + bytes([9, 0, 9, 14, 4, 2, 5, 6,
           12, 0, 20, 13, 0, 21, 16, 0, 8, 17, 0x81, 20, 30, 0, 0, 0, 0, 0, 0, 5, 120]),
]


_WORDS = ("psk", "pubkey", "eap-mschapv2", "eap-tls", "pubkey+eap-md5", "ipv4", "ipv6", "auto",
          "kernel", "ca.pem", "cert.pem", "key.pem", "psk.txt", "~", "/dev/zero", "10.0.0.0/8",
          "fd00::/8", "0.0.0.0/0", "vpn.example.org", "198.51.100.1", "aes256gcm16-prfsha384-x25519",
          "aes128-sha256", "")


def _table(data: bytes) -> dict:
    """A profile table from bytes: [key][kind][value...] repeated."""
    table, i = {}, 1
    def take(n):
        nonlocal i
        chunk = data[i:i + n]
        i += n
        return chunk
    while i < len(data):
        head = take(2)
        if len(head) < 2:
            break
        key = KNOWN_KEYS[head[0] % len(KNOWN_KEYS)] if head[0] < 250 else head[:1].hex()
        kind = head[1] % 7
        if kind == 0:
            value = _WORDS[take(1)[0] % len(_WORDS)] if i < len(data) else ""
        elif kind == 1:
            size = take(1)[0] if i < len(data) else 0
            value = take(size).decode("utf-8", "replace")
        elif kind == 2:
            value = int.from_bytes(take(8), "big", signed=True) * (10 ** (head[1] % 5 * 100))
        elif kind == 3:
            value = bool(head[1] & 0x80)
        elif kind == 4:
            count = take(1)[0] % 6 if i < len(data) else 0
            value = [_WORDS[b % len(_WORDS)] for b in take(count)]
        elif kind == 5:
            value = float(int.from_bytes(take(2), "big")) / 7
        else:
            value = {"x": [1, {"y": "z"}]}
        table[key] = value
    return table


def one_input(data: bytes) -> None:
    try:
        if data[:1] == b"\x01":
            profile = profile_from_dict(_table(data), _PATH)
        else:
            profile = profile_from_bytes(data, _PATH)
    except ProfileError:
        return
    text = format_toml(profile_to_dict(profile, relative_to=_FOLDER))
    again = profile_from_bytes(text.encode("utf-8"), _PATH)
    if again != profile:
        raise AssertionError(f"written profile differs: {profile!r} -> {again!r}")
