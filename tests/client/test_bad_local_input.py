"""Issue 13 §3: bad local input to `cygnet up` is one clear line, before anything starts.

Each case runs `cygnet up` in a child Python with an audit hook (PEP 578) that records every
fork (the netlink agent), socket, DNS lookup and open of /dev/net/tun: a refused profile must
leave that record empty, print exactly one line on stderr, and exit non-zero.
"""
from __future__ import annotations

import datetime
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.netns
PROJECT = Path(__file__).resolve().parents[2]

# The child: record what starts, then run the CLI as `cygnet up PROFILE` would.
_WRAPPER = r"""
import json, os, sys
record = open(os.environ["AUDIT_RECORD"], "w")
WATCHED = {"os.fork", "os.posix_spawn", "subprocess.Popen", "socket.__new__", "socket.getaddrinfo"}
def hook(event, args):
    if event in WATCHED or (event == "open" and str(args[0]) == "/dev/net/tun"):
        record.write(json.dumps([event, repr(args)[:200]]) + "\n"); record.flush()
sys.addaudithook(hook)
from client.cli import main
sys.exit(main(["up", sys.argv[1]]))
"""


def cygnet_up(profile: Path, tmp_path: Path) -> tuple[int, str, list]:
    record = tmp_path / "audit.jsonl"
    env = dict(os.environ, AUDIT_RECORD=str(record), CYGNET_RUN_DIR=str(tmp_path / "run"),
               PYTHONPATH=str(PROJECT))
    # In a fresh network namespace: should a check regress, the start it lets through must not
    # touch the machine's own network.
    done = subprocess.run(["unshare", "--net", sys.executable, "-c", _WRAPPER, str(profile)],
                          stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
    events = [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []
    return done.returncode, done.stderr, events


def assert_refused(tmp_path: Path, profile: Path, *fragments: str) -> str:
    code, stderr, events = cygnet_up(profile, tmp_path)
    assert code != 0
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert events == [], f"started before refusing: {events}"
    return lines[0]


def write_profile(folder: Path, body: str, name: str = "office") -> Path:
    path = folder / f"{name}.toml"
    path.write_text('gateway = "198.51.100.1"\n' + body)
    return path


def private(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    path.chmod(0o600)
    return path


def make_cert(folder: Path, name: str, ca: bool):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path = folder / f"{name}.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    key_path = private(folder / f"{name}.key", key_pem)
    return cert_path, key_path


# ------------------------------------------------------------------------------ secrets


@pytest.mark.parametrize("content, mode, fragment", [
    ("secret\n", 0o644, "mode 0644"),
    ("\n", 0o600, "the PSK is empty"),
    ("0xnothex\n", 0o600, "not valid hex"),
])
def test_bad_psk_file_is_one_line_and_starts_nothing(tmp_path, content, mode, fragment):
    psk = tmp_path / "psk.txt"
    psk.write_text(content)
    psk.chmod(mode)
    profile = write_profile(tmp_path, 'auth = "psk"\npsk_file = "psk.txt"\n')
    assert_refused(tmp_path, profile, fragment)


def test_non_utf8_password_is_one_line(tmp_path):
    private(tmp_path / "pw", b"\xff\xfe\n")
    profile = write_profile(tmp_path, 'auth = "eap-mschapv2"\neap_identity = "carol"\npassword_file = "pw"\n')
    assert_refused(tmp_path, profile, "not UTF-8")


def test_missing_secret_without_terminal_is_one_line(tmp_path):
    profile = write_profile(tmp_path, 'auth = "eap-mschapv2"\neap_identity = "carol"\n')
    assert_refused(tmp_path, profile, "no EAP password")


# ------------------------------------------------------------------------------ the profile itself


def test_profile_not_utf8(tmp_path):
    profile = tmp_path / "office.toml"
    profile.write_bytes(b'gateway = "\xff"\n')
    assert_refused(tmp_path, profile, "not UTF-8")


def test_deeply_nested_profile(tmp_path):
    profile = tmp_path / "office.toml"
    profile.write_text("x = " + "[" * 100_000 + "]" * 100_000 + "\n")
    assert_refused(tmp_path, profile, "nested too deeply")


def test_profile_path_too_long(tmp_path):
    assert_refused(tmp_path, tmp_path / ("a" * 300 + ".toml"), "File name too long")


def test_profile_under_unknown_user(tmp_path):
    assert_refused(tmp_path, Path("~nosuchuser-cygnet/x.toml"), "not a usable path")


@pytest.mark.parametrize("key, value", [
    ("ca", "~nosuchuser-cygnet/ca.pem"),
    ("ca", "/" + "b" * 300),
])
def test_unusable_paths_in_profile(tmp_path, key, value):
    profile = write_profile(tmp_path, f'auth = "pubkey"\ncert = "c.pem"\nkey = "c.key"\n{key} = "{value}"\n')
    make_cert(tmp_path, "c", ca=False)
    assert_refused(tmp_path, profile, f"key '{key}'", "not a usable path")


@pytest.mark.parametrize("key", ["dpd", "reauth"])
def test_huge_interval_is_out_of_range(tmp_path, key):
    private(tmp_path / "psk", "secret")
    profile = write_profile(tmp_path, f'auth = "psk"\npsk_file = "psk"\n{key} = {10**400}\n')
    # tomllib reads 10**400 as a Python int: range-checked, not overflowing a float timer.
    assert_refused(tmp_path, profile, f"key '{key}'", "out of range")


# ------------------------------------------------------------------------------ what it names


def test_ca_dev_zero_is_refused_without_reading_it(tmp_path):
    private(tmp_path / "psk", "secret")
    profile = write_profile(tmp_path, 'auth = "eap-mschapv2"\neap_identity = "c"\npassword_file = "psk"\n'
                                      'ca = "/dev/zero"\n')
    assert_refused(tmp_path, profile, "/dev/zero", "not a regular file")


def test_ca_folder_without_a_ca(tmp_path):
    private(tmp_path / "pw", "secret")
    cas = tmp_path / "cas"
    cas.mkdir()
    make_cert(cas, "leaf", ca=False)  # a certificate, but no CA: skipped, as charon skips it
    profile = write_profile(tmp_path, 'auth = "eap-mschapv2"\neap_identity = "c"\npassword_file = "pw"\n'
                                      'ca = "cas"\n')
    assert_refused(tmp_path, profile, "no CA certificates")


def test_bad_cert_file(tmp_path):
    make_cert(tmp_path, "c", ca=False)
    (tmp_path / "c.pem").write_text("not a certificate\n")
    profile = write_profile(tmp_path, 'auth = "pubkey"\ncert = "c.pem"\nkey = "c.key"\n')
    assert_refused(tmp_path, profile, "c.pem", "no PEM or DER certificate")


def test_bad_key_file(tmp_path):
    make_cert(tmp_path, "c", ca=False)
    private(tmp_path / "c.key", "-----BEGIN PRIVATE KEY-----\ngarbage\n-----END PRIVATE KEY-----\n")
    profile = write_profile(tmp_path, 'auth = "pubkey"\ncert = "c.pem"\nkey = "c.key"\n')
    assert_refused(tmp_path, profile, "cannot load private key")


def test_key_of_another_certificate(tmp_path):
    make_cert(tmp_path, "c", ca=False)
    make_cert(tmp_path, "other", ca=False)
    profile = write_profile(tmp_path, 'auth = "pubkey"\ncert = "c.pem"\nkey = "other.key"\n')
    assert_refused(tmp_path, profile, "does not belong to certificate")


def test_private_key_readable_by_others_is_refused(tmp_path):
    _, key = make_cert(tmp_path, "c", ca=False)
    key.chmod(0o644)
    profile = write_profile(tmp_path, 'auth = "pubkey"\ncert = "c.pem"\nkey = "c.key"\n')
    assert_refused(tmp_path, profile, "mode 0644", "chmod 600")


def test_fifo_as_cert_does_not_block(tmp_path):
    make_cert(tmp_path, "c", ca=False)
    os.unlink(tmp_path / "c.pem")
    os.mkfifo(tmp_path / "c.pem")
    profile = write_profile(tmp_path, 'auth = "pubkey"\ncert = "c.pem"\nkey = "c.key"\n')
    assert_refused(tmp_path, profile, "key 'cert'", "is not a file")


# ------------------------------------------------------------------------------ the agent


def test_agent_exits_quietly_when_the_engine_goes_first():
    """The engine refusing right after prestart closed its end while the agent still had the
    kernel ESP probe's answer to send: the agent printed a ConnectionResetError trace."""
    code = ("from client import netlink_agent as n\n"
            "a = n.NetlinkAgent(); a.start(probe_kernel_esp=True)\n"
            "import socket; a._sock.shutdown(socket.SHUT_RDWR); a._sock.close(); a._sock = None\n"
            "import os; _, status = os.waitpid(a._pid, 0); print(os.waitstatus_to_exitcode(status))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(PROJECT)))
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stdout.strip() == "0"


def test_more_traffic_selectors_than_a_payload_holds(tmp_path):
    from client.profile import ProfileError, load_profile

    nets = ", ".join(f'"10.{i // 256}.{i % 256}.0/24"' for i in range(256))
    profile = write_profile(tmp_path, f'auth = "psk"\npsk_file = "psk"\nremote_ts = [{nets}]\n')
    with pytest.raises(ProfileError, match="at most 255 .*RFC 7296"):
        load_profile(str(profile))


@pytest.mark.parametrize("line, fragment", [
    ('local_id = "C=XYZ, CN=carol"', "country 'XYZ'"),
    ('remote_id = "@#zz"', "key 'remote_id'"),
    (f'remote_id = "{"a" * 5000}"', "too long"),
    (f'eap_identity = "{"a" * 5000}"', "key 'eap_identity' is too long"),
])
def test_identity_that_ike_cannot_encode(tmp_path, line, fragment):
    private(tmp_path / "psk", "secret")
    auth = 'auth = "eap-md5"\npassword_file = "psk"\n' if "eap_identity" in line else \
        'auth = "psk"\npsk_file = "psk"\n'
    profile = write_profile(tmp_path, f'{auth}{line}\n')
    assert_refused(tmp_path, profile, fragment)


def test_integer_too_long_to_read_is_one_line(tmp_path):
    """Found by tests/fuzz/target_profile.py: tomllib raises a bare ValueError for an integer
    of more than 4300 digits."""
    profile = write_profile(tmp_path, f'auth = "psk"\ndpd = {"9" * 5000}\n')
    assert_refused(tmp_path, profile, "not valid TOML", "4300 digits")


def test_encrypted_key_without_a_passphrase_is_refused_before_start(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    make_cert(tmp_path, "c", ca=False)
    key = ec.generate_private_key(ec.SECP256R1())
    private(tmp_path / "c.key", key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.BestAvailableEncryption(b"pw")))
    profile = write_profile(tmp_path, 'auth = "pubkey"\ncert = "c.pem"\nkey = "c.key"\n')
    assert_refused(tmp_path, profile, "is encrypted", "key_passphrase_file")
