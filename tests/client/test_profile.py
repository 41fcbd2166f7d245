"""Profiles (client/profile.py) and secrets (client/secrets.py).

Every key is tried with good and bad values; error messages are compared in full so that a
message that stops naming the key, or stops saying what is allowed, fails here.
"""

import ipaddress
import os
import pickle
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from client.profile import (
    DEFAULT_REMOTE_TS,
    Profile,
    ProfileError,
    find_profile,
    format_toml,
    load_profile,
    profile_to_dict,
)
from client.secrets import Secret, SecretError, get_secret, read_secret_file
from tests.client.terminal import run_on_terminal


def private_file(path: Path, content: str) -> Path:
    path.write_text(content)
    os.chmod(path, 0o600)
    return path


@pytest.fixture
def folder(tmp_path):
    """A profile folder with the files profiles point to."""
    private_file(tmp_path / "psk.txt", "correct horse battery staple\n")
    private_file(tmp_path / "password.txt", "s3cret-pass\n")
    (tmp_path / "ca.pem").write_text("ca\n")
    (tmp_path / "cert.pem").write_text("cert\n")
    private_file(tmp_path / "key.pem", "key\n")
    (tmp_path / "cas").mkdir()
    return tmp_path


PSK_BASE = 'gateway = "vpn.example.org"\nauth = "psk"\npsk_file = "psk.txt"\n'


def write(folder: Path, text: str, name: str = "office") -> Path:
    path = folder / f"{name}.toml"
    path.write_text(textwrap.dedent(text))
    return path


def load(folder: Path, text: str, name: str = "office") -> Profile:
    return load_profile(str(write(folder, text, name)))


def error_of(folder: Path, text: str) -> str:
    path = write(folder, text)
    with pytest.raises(ProfileError) as info:
        load_profile(str(path))
    message = str(info.value)
    prefix = f"{path}: "
    assert message.startswith(prefix), message
    return message[len(prefix):]


# ---------------------------------------------------------------------------------------------
# A minimal profile and the defaults


def test_minimal_psk_profile_has_documented_defaults(folder):
    p = load(folder, PSK_BASE)
    assert p.name == "office"
    assert p.gateways == ("vpn.example.org",) and p.gateway == "vpn.example.org"
    assert p.port == 500
    assert p.auth == "psk"
    assert p.psk_file == folder / "psk.txt"
    assert p.remote_id is None and p.local_id is None and p.eap_identity is None
    assert p.ca is None and p.cert is None and p.key is None
    assert p.ike is None and p.esp is None
    assert p.virtual_ip == ("ipv4", "ipv6")
    assert p.remote_ts == DEFAULT_REMOTE_TS == (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))
    assert p.dataplane == "auto"
    assert p.encap is False and p.dpd == 30 and p.mtu is None
    assert p.dns is True and p.keyring is False
    assert p.path == folder / "office.toml"


def test_every_key_with_a_good_value(folder):
    p = load(folder, """
        name = "corp-vpn"
        gateway = ["vpn1.example.org", "192.0.2.1", "2001:db8::1"]
        port = 4500
        remote_id = "vpn.example.org"
        local_id = "carol@example.org"
        auth = "pubkey+eap-mschapv2"
        password_file = "password.txt"
        eap_identity = "carol"
        ca = "cas"
        cert = "cert.pem"
        key = "key.pem"
        virtual_ip = ["ipv4"]
        remote_ts = ["10.0.0.0/8", "fd00::/8"]
        dataplane = "userspace"
        encap = true
        dpd = 0
        mtu = 1400
        dns = false
        keyring = true
    """)
    assert p.name == "corp-vpn"
    assert p.gateways == ("vpn1.example.org", "192.0.2.1", "2001:db8::1")
    assert p.port == 4500
    assert (p.remote_id, p.local_id, p.eap_identity) == ("vpn.example.org", "carol@example.org", "carol")
    assert p.auth == "pubkey+eap-mschapv2" and p.eap_method == "mschapv2"
    assert p.auth_rounds == ("pubkey", "eap-mschapv2")
    assert p.needs_password and p.needs_certificate
    assert p.password_file == folder / "password.txt"
    assert p.ca == folder / "cas" and p.cert == folder / "cert.pem" and p.key == folder / "key.pem"
    assert p.virtual_ip == ("ipv4",)
    assert p.remote_ts == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))
    assert (p.dataplane, p.encap, p.dpd, p.mtu, p.dns, p.keyring) == ("userspace", True, 0, 1400, False, True)


@pytest.mark.parametrize("auth,extra,method", [
    ("pubkey", 'cert = "cert.pem"\nkey = "key.pem"\n', None),
    ("eap-mschapv2", 'eap_identity = "carol"\n', "mschapv2"),
    ("eap-md5", 'local_id = "carol"\n', "md5"),
    ("eap-tls", 'cert = "cert.pem"\nkey = "key.pem"\nlocal_id = "carol@example.org"\n', "tls"),
    ("pubkey+eap-md5", 'cert = "cert.pem"\nkey = "key.pem"\neap_identity = "carol"\n', "md5"),
])
def test_each_auth_method_with_what_it_needs(folder, auth, extra, method):
    p = load(folder, f'gateway = "gw"\nauth = "{auth}"\n{extra}')
    assert p.auth == auth and p.eap_method == method


def test_psk_from_keyring_needs_no_file(folder):
    p = load(folder, 'gateway = "gw"\nauth = "psk"\nkeyring = true\n')
    assert p.psk_file is None and p.keyring


def test_every_key_is_documented_in_the_module_table():
    import client.profile

    table_rows = [line for line in client.profile.__doc__.splitlines() if line.startswith("| ")]
    documented = [row.split("|")[1].strip() for row in table_rows[1:]]
    assert documented == list(client.profile.KNOWN_KEYS)


# ---------------------------------------------------------------------------------------------
# Bad values: the message names the key and what is allowed


BAD_VALUES = [
    ('bogus = 1\n', "key 'bogus': unknown key (known keys: name, gateway, port, remote_id, local_id, "
     "auth, psk_file, password_file, eap_identity, ca, cert, key, ike, esp, virtual_ip, remote_ts, "
     "dataplane, encap, dpd, reauth, mtu, dns, keyring)"),
    ('name = "my office"\n', "key 'name': 'my office' may hold only letters, digits, '.', '_' and '-' "
     "(at most 64, starting with a letter or digit)"),
    ('name = 5\n', "key 'name': must be a string, not a number"),
    ('port = 0\n', "key 'port': 0 is out of range (allowed: from 1 to 65535)"),
    ('port = 65536\n', "key 'port': 65536 is out of range (allowed: from 1 to 65535)"),
    ('port = "500"\n', "key 'port': must be a whole number, not a string"),
    ('port = true\n', "key 'port': must be a whole number, not true/false"),
    ('remote_id = ""\n', "key 'remote_id': must not be empty"),
    ('remote_id = 3\n', "key 'remote_id': must be a string, not a number"),
    ('local_id = ["a"]\n', "key 'local_id': must be a string, not a list"),
    ('eap_identity = {a = 1}\n', "key 'eap_identity': must be a string, not a table"),
    ('ca = "missing.pem"\n', "key 'ca': {folder}/missing.pem does not exist or is not a file or folder"),
    ('cert = "cas"\n', "key 'cert': {folder}/cas does not exist or is not a file"),
    ('key = "nokey.pem"\n', "key 'key': {folder}/nokey.pem does not exist or is not a file"),
    ('virtual_ip = ["ipv5"]\n', "key 'virtual_ip': 'ipv5' is not one of ipv4, ipv6"),
    ('virtual_ip = "ipv4"\n', "key 'virtual_ip': must be a list of strings, not a string"),
    ('virtual_ip = ["ipv4", "ipv4"]\n', "key 'virtual_ip': lists a family twice"),
    ('remote_ts = ["10.0.0.0/33"]\n', "key 'remote_ts': '10.0.0.0/33' is not a network in CIDR form "
     "(like 10.0.0.0/8 or fd00::/8)"),
    ('remote_ts = ["office-lan"]\n', "key 'remote_ts': 'office-lan' is not a network in CIDR form "
     "(like 10.0.0.0/8 or fd00::/8)"),
    ('remote_ts = ["10.0.0.1/8"]\n', "key 'remote_ts': '10.0.0.1/8' has host bits set "
     "(did you mean 10.0.0.0/8?)"),
    ('remote_ts = []\n', "key 'remote_ts': must list at least one network (leave it out to send everything)"),
    ('remote_ts = [1]\n', "key 'remote_ts': every entry must be a non-empty string, not a number"),
    ('dataplane = "xfrm"\n', "key 'dataplane': 'xfrm' is not one of userspace, kernel, auto"),
    ('encap = "yes"\n', "key 'encap': must be true or false, not a string"),
    ('dpd = -1\n', "key 'dpd': -1 is out of range (allowed: 0 or more)"),
    ('dpd = 1.5\n', "key 'dpd': must be a whole number, not a number"),
    ('mtu = 1279\n', "key 'mtu': 1279 is out of range (allowed: from 1280 to 9000)"),
    ('mtu = 9001\n', "key 'mtu': 9001 is out of range (allowed: from 1280 to 9000)"),
    ('dns = 1\n', "key 'dns': must be true or false, not a number"),
    ('keyring = "true"\n', "key 'keyring': must be true or false, not a string"),
]


@pytest.mark.parametrize("line,expected", BAD_VALUES, ids=[b[0].split("=")[0].strip() + str(i)
                                                           for i, b in enumerate(BAD_VALUES)])
def test_bad_value_is_named(folder, line, expected):
    assert error_of(folder, PSK_BASE + line) == expected.format(folder=folder)


@pytest.mark.parametrize("text,expected", [
    ('auth = "psk"\npsk_file = "psk.txt"\n', "key 'gateway': is required (the gateway's host name or address)"),
    ('gateway = []\nauth = "psk"\nkeyring = true\n', "key 'gateway': must name at least one gateway"),
    ('gateway = "vpn example"\nauth = "psk"\nkeyring = true\n',
     "key 'gateway': 'vpn example' is not a host name or IP address"),
    ('gateway = ["ok.example", "-bad"]\nauth = "psk"\nkeyring = true\n',
     "key 'gateway': '-bad' is not a host name or IP address"),
    ('gateway = 7\nauth = "psk"\n', "key 'gateway': must be a string or a list of strings, not a number"),
    ('gateway = "gw"\n', "key 'auth': is required (one of psk, pubkey, eap-mschapv2, eap-md5, eap-tls, "
     "pubkey+eap-mschapv2, pubkey+eap-md5)"),
    ('gateway = "gw"\nauth = "eap-foo"\n', "key 'auth': 'eap-foo' is not one of psk, pubkey, eap-mschapv2, "
     "eap-md5, eap-tls, pubkey+eap-mschapv2, pubkey+eap-md5"),
])
def test_gateway_and_auth_errors(folder, text, expected):
    assert error_of(folder, text) == expected


# ---------------------------------------------------------------------------------------------
# Required combinations


@pytest.mark.parametrize("text,expected", [
    ('gateway = "gw"\nauth = "psk"\n', "key 'auth': psk needs a secret source: set 'psk_file' or 'keyring = true'"),
    ('gateway = "gw"\nauth = "pubkey"\nkey = "key.pem"\n', "key 'cert': is required with auth = \"pubkey\""),
    ('gateway = "gw"\nauth = "pubkey"\ncert = "cert.pem"\n', "key 'key': is required with auth = \"pubkey\""),
    ('gateway = "gw"\nauth = "eap-tls"\nlocal_id = "c"\n', "key 'cert': is required with auth = \"eap-tls\""),
    ('gateway = "gw"\nauth = "pubkey+eap-mschapv2"\neap_identity = "c"\ncert = "cert.pem"\n',
     "key 'key': is required with auth = \"pubkey+eap-mschapv2\""),
    ('gateway = "gw"\nauth = "eap-mschapv2"\n',
     "key 'eap_identity': is required with auth = \"eap-mschapv2\" (or set 'local_id')"),
    ('gateway = "gw"\nauth = "eap-tls"\ncert = "cert.pem"\nkey = "key.pem"\n',
     "key 'eap_identity': is required with auth = \"eap-tls\" (or set 'local_id')"),
    ('gateway = "gw"\nauth = "eap-md5"\nlocal_id = "c"\npsk_file = "psk.txt"\n',
     "key 'psk_file': is only used with auth = \"psk\", not \"eap-md5\""),
    ('gateway = "gw"\nauth = "psk"\nkeyring = true\npassword_file = "password.txt"\n',
     "key 'password_file': is only used with auth eap-mschapv2, eap-md5, pubkey+eap-mschapv2, "
     "pubkey+eap-md5, not \"psk\""),
])
def test_required_combinations(folder, text, expected):
    assert error_of(folder, text) == expected


# ---------------------------------------------------------------------------------------------
# Proposals: validated by ike/proposals.py


@pytest.fixture
def proposals():
    return pytest.importorskip("ike.proposals")


def test_good_proposals_are_kept_as_written(folder, proposals):
    p = load(folder, PSK_BASE + 'ike = "aes256gcm16-prfsha384-x25519"\nesp = "aes128gcm16"\n')
    assert p.ike == "aes256gcm16-prfsha384-x25519" and p.esp == "aes128gcm16"


@pytest.mark.parametrize("key,value,token", [
    ("ike", "aes256gcm16-prfsha384-x25519-bogus42", "bogus42"),
    ("esp", "aes128gcm16-frobnicate", "frobnicate"),
])
def test_bad_proposal_names_the_key_and_token(folder, proposals, key, value, token):
    message = error_of(folder, PSK_BASE + f'{key} = "{value}"\n')
    assert message.startswith(f"key '{key}': ")
    assert token in message


def test_proposals_must_be_strings(folder):
    assert error_of(folder, PSK_BASE + 'ike = ["aes128-sha256-modp3072"]\n') == \
        "key 'ike': must be a string, not a list"


# ---------------------------------------------------------------------------------------------
# Paths and lookup


def test_relative_paths_are_taken_from_the_profile_folder(folder, monkeypatch):
    sub = folder / "profiles"
    sub.mkdir()
    (sub / "ca.pem").write_text("other ca\n")
    monkeypatch.chdir(folder)  # the working folder must not matter
    p = load(sub, 'gateway = "gw"\nauth = "psk"\npsk_file = "../psk.txt"\nca = "ca.pem"\n')
    assert p.psk_file == folder / "psk.txt"
    assert p.ca == sub / "ca.pem"


def test_absolute_and_home_paths(folder, monkeypatch):
    monkeypatch.setenv("HOME", str(folder))
    p = load(folder / "cas", f'gateway = "gw"\nauth = "psk"\npsk_file = "~/psk.txt"\nca = "{folder}/ca.pem"\n')
    assert p.psk_file == folder / "psk.txt" and p.ca == folder / "ca.pem"


def test_lookup_by_name_prefers_the_user_folder(folder, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(folder / "config"))
    user_dir = folder / "config" / "cygnet"
    system_dir = folder / "etc"
    user_dir.mkdir(parents=True)
    system_dir.mkdir()
    write(system_dir, 'gateway = "system.example"\nauth = "psk"\nkeyring = true\n')
    dirs = [user_dir, system_dir]
    assert load_profile("office", search_dirs=dirs).gateway == "system.example"
    write(user_dir, 'gateway = "user.example"\nauth = "psk"\nkeyring = true\n')
    assert find_profile("office", search_dirs=dirs) == user_dir / "office.toml"
    assert load_profile("office", search_dirs=dirs).gateway == "user.example"
    # Without explicit folders: $XDG_CONFIG_HOME/cygnet, then /etc/cygnet/profiles.
    assert load_profile("office").gateway == "user.example"


def test_lookup_errors(folder):
    with pytest.raises(ProfileError) as info:
        find_profile("home", search_dirs=[folder / "a", folder / "b"])
    assert str(info.value) == (f"no profile named 'home' (looked for {folder}/a/home.toml, "
                               f"{folder}/b/home.toml)")
    with pytest.raises(ProfileError, match=r"^nowhere/x.toml: no such profile file$"):
        find_profile("nowhere/x.toml")
    with pytest.raises(ProfileError, match=r"^'bad name!' is not a profile name or a path to a .toml file$"):
        find_profile("bad name!")


def test_a_file_name_that_is_no_profile_name(folder):
    path = write(folder, PSK_BASE, name="my office")
    with pytest.raises(ProfileError) as info:
        load_profile(str(path))
    assert str(info.value) == (
        f"{path}: key 'name': not set, and the file name 'my office' is no profile name: a name may "
        "hold only letters, digits, '.', '_' and '-' (at most 64, starting with a letter or digit); "
        "rename the file or set 'name'")
    path.write_text(PSK_BASE + 'name = "my-office"\n')
    assert load_profile(str(path)).name == "my-office"


def test_a_path_works_and_name_defaults_to_the_file_name(folder):
    path = write(folder, PSK_BASE, name="lab-2")
    p = load_profile(str(path))
    assert p.name == "lab-2" and p.path == path


def test_toml_syntax_error_names_the_file(folder):
    path = write(folder, 'gateway = "unterminated\n')
    with pytest.raises(ProfileError, match=rf"^{path}: not valid TOML: "):
        load_profile(str(path))


# ---------------------------------------------------------------------------------------------
# Writing profiles back


def test_profile_written_as_toml_loads_back_equal(folder):
    original = load(folder, """
        name = "corp"
        gateway = ["vpn1.example.org", "vpn2.example.org"]
        remote_id = "CN=vpn \\"quoted\\" \\\\ Zürich"
        auth = "eap-mschapv2"
        eap_identity = "carol"
        password_file = "password.txt"
        ca = "ca.pem"
        remote_ts = ["10.0.0.0/8"]
        virtual_ip = []
        dpd = 10
    """)
    table = profile_to_dict(original, relative_to=folder)
    assert table["ca"] == "ca.pem" and table["gateway"] == ["vpn1.example.org", "vpn2.example.org"]
    assert "port" not in table  # defaults are left out
    (folder / "corp-copy.toml").write_text(format_toml(table, comment="a copy\nof corp"))
    again = load_profile(str(folder / "corp-copy.toml"))
    assert again == original
    assert again.remote_id == 'CN=vpn "quoted" \\ Zürich'
    # Without relative_to the paths are absolute, so the copy works from any folder.
    elsewhere = folder / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "corp.toml").write_text(format_toml(profile_to_dict(original)))
    assert load_profile(str(elsewhere / "corp.toml")) == original


def test_profile_repr_holds_no_secret(folder):
    p = load(folder, PSK_BASE)
    assert "correct horse" not in repr(p)


# ---------------------------------------------------------------------------------------------
# Secrets: the Secret type


def test_secret_never_shows_its_value():
    s = Secret("hunter2-value")
    for text in (repr(s), str(s), f"{s}", f"{s!r}", "%s" % s, repr([s]), repr({"k": s})):
        assert "hunter2" not in text
    assert s.reveal() == b"hunter2-value"
    assert s == Secret(b"hunter2-value") and s != Secret("other")
    with pytest.raises(TypeError):
        pickle.dumps(s)
    with pytest.raises(TypeError):
        hash(s)


def test_secret_in_an_exception_stays_hidden():
    s = Secret("hunter2-value")
    error = RuntimeError(f"failed with {s}", s)
    assert "hunter2" not in str(error) and "hunter2" not in repr(error)


# ---------------------------------------------------------------------------------------------
# Secrets from files


@pytest.mark.parametrize("content,expected", [
    ("correct horse\n", b"correct horse"),
    ("correct horse\r\n", b"correct horse"),
    ("  spaces kept  ", b"  spaces kept  "),
    ("0x0102aBfF\n", b"\x01\x02\xab\xff"),
    ("0X01 02\n", b"\x01\x02"),
    ("0sAQID\n", b"\x01\x02\x03"),
    ("Grüße\n", "Grüße".encode()),
])
def test_psk_file_formats(tmp_path, content, expected):
    path = private_file(tmp_path / "psk", content)
    assert read_secret_file(path, is_psk=True).reveal() == expected


def test_password_file_is_taken_literally(tmp_path):
    path = private_file(tmp_path / "pw", "0xnot-hex\n")
    assert read_secret_file(path, is_psk=False).reveal() == b"0xnot-hex"


@pytest.mark.parametrize("content,problem", [
    ("0xZZ99-secret", "the PSK starts with 0x but is not valid hex"),
    ("0s!!!-secret", "the PSK starts with 0s but is not valid base64"),
    ("\n", "the PSK is empty"),
])
def test_bad_psk_file_says_why_without_the_value(tmp_path, content, problem):
    path = private_file(tmp_path / "psk", content)
    with pytest.raises(SecretError) as info:
        read_secret_file(path, is_psk=True)
    assert str(info.value) == f"PSK file {path}: {problem}"
    assert "secret" not in str(info.value).replace(str(tmp_path), "")


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o660])
def test_group_or_world_accessible_file_is_refused(tmp_path, mode):
    path = tmp_path / "psk"
    path.write_text("topsecret\n")
    os.chmod(path, mode)
    with pytest.raises(SecretError) as info:
        read_secret_file(path, is_psk=True)
    assert str(info.value) == (f"PSK file {path} is accessible by group or others (mode {mode:04o}); "
                               f"run: chmod 600 {path}")
    assert "topsecret" not in str(info.value)


def test_missing_secret_file(tmp_path):
    with pytest.raises(SecretError, match="^password file .*/nope does not exist$"):
        read_secret_file(tmp_path / "nope", is_psk=False)


def test_secret_file_must_be_a_regular_utf8_file(tmp_path):
    folder = tmp_path / "dir"
    folder.mkdir(mode=0o700)
    with pytest.raises(SecretError, match=f"^PSK file {folder} is not a regular file$"):
        read_secret_file(folder, is_psk=True)
    binary = tmp_path / "bin"
    binary.write_bytes(b"\xff\xfe\x00")
    os.chmod(binary, 0o600)
    with pytest.raises(SecretError, match=rf"^PSK file {binary} is not UTF-8 text \(write binary PSKs as 0x hex\)$"):
        read_secret_file(binary, is_psk=True)


def test_get_secret_uses_the_profile_file(folder):
    assert get_secret(load(folder, PSK_BASE)).reveal() == b"correct horse battery staple"
    eap = load(folder, 'gateway = "gw"\nauth = "eap-md5"\neap_identity = "c"\npassword_file = "password.txt"\n')
    assert get_secret(eap).reveal() == b"s3cret-pass"


def test_get_secret_refuses_a_profile_without_secret(folder):
    p = load(folder, 'gateway = "gw"\nauth = "pubkey"\ncert = "cert.pem"\nkey = "key.pem"\n')
    with pytest.raises(SecretError, match=r"^profile 'office' \(auth = pubkey\) uses no PSK or password$"):
        get_secret(p)


def test_no_source_and_no_terminal_says_how_to_provide_it(folder):
    p = load(folder, 'gateway = "gw"\nauth = "eap-mschapv2"\neap_identity = "carol"\n')
    with pytest.raises(SecretError) as info:
        get_secret(p)  # pytest's stdin is not a terminal
    assert str(info.value) == (
        "no EAP password for profile 'office': set 'password_file' in the profile (a file with mode 600), "
        "or set 'keyring = true' and store it with `keyring set cygnet office`, or run cygnet on a "
        "terminal to be asked")


# ---------------------------------------------------------------------------------------------
# Secrets from a real keyring backend (keyrings.alt's file keyring, in a temporary folder)


@pytest.fixture
def file_keyring(tmp_path, monkeypatch):
    pytest.importorskip("keyrings.alt")
    import keyring
    import keyring.core

    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    keyring.core.init_backend()
    assert type(keyring.get_keyring()).__name__ == "PlaintextKeyring"
    yield keyring
    monkeypatch.undo()
    keyring.core.init_backend()


def test_keyring_psk(folder, file_keyring):
    p = load(folder, 'gateway = "gw"\nauth = "psk"\nkeyring = true\n', name="lab")
    file_keyring.set_password("cygnet", "lab", "0x00ff10")
    assert get_secret(p).reveal() == b"\x00\xff\x10"
    assert (folder / "data").exists()  # the backend really wrote its file there


def test_keyring_password_and_file_wins_over_keyring(folder, file_keyring):
    from client.secrets import store_in_keyring

    store_in_keyring("office", Secret("from-keyring"))
    eap = 'gateway = "gw"\nauth = "eap-mschapv2"\neap_identity = "c"\nkeyring = true\n'
    assert get_secret(load(folder, eap)).reveal() == b"from-keyring"
    with_file = load(folder, eap + 'password_file = "password.txt"\n')
    assert get_secret(with_file).reveal() == b"s3cret-pass"


def test_keyring_entry_missing_and_no_terminal(folder, file_keyring):
    p = load(folder, 'gateway = "gw"\nauth = "psk"\nkeyring = true\n')
    with pytest.raises(SecretError, match=r"^no PSK for profile 'office': .*keyring set cygnet office"):
        get_secret(p)


def test_unusable_keyring_is_a_clear_error(folder, monkeypatch):
    import keyring.core

    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")
    keyring.core.init_backend()
    try:
        p = load(folder, 'gateway = "gw"\nauth = "psk"\nkeyring = true\n')
        with pytest.raises(SecretError, match=r"^profile 'office' says keyring = true, but the keyring "
                                              r"cannot be used: "):
            get_secret(p)
    finally:
        monkeypatch.undo()
        keyring.core.init_backend()


# ---------------------------------------------------------------------------------------------
# Secrets typed on a real terminal (a pseudo-terminal)


def test_password_is_asked_on_a_terminal_without_echo(folder):
    write(folder, 'gateway = "gw"\nauth = "eap-mschapv2"\neap_identity = "carol"\n')
    script = (
        "from client.profile import load_profile; from client.secrets import get_secret;"
        f"s = get_secret(load_profile({str(folder / 'office.toml')!r}));"
        "print('GOT', s.reveal().hex(), repr(s))"
    )
    out = run_on_terminal([sys.executable, "-c", script], b"typed-pass\n", timeout=20.0)
    assert "EAP password for carol on 'office': " in out
    assert f"GOT {b'typed-pass'.hex()} Secret(<hidden>)" in out
    assert "typed-pass" not in out  # not echoed


# ---------------------------------------------------------------------------------------------
# The TOML writer survives any text


@given(text=st.text(max_size=40), number=st.integers(min_value=-2**63, max_value=2**63 - 1),
       flag=st.booleans(), items=st.lists(st.text(max_size=10), max_size=4))
def test_format_toml_round_trips_any_values(text, number, flag, items):
    import tomllib

    table = {"s": text, "n": number, "b": flag, "l": items}
    assert tomllib.loads(format_toml(table, comment="any\ncomment")) == table


def test_remote_id_any_warns_in_one_line(tmp_path):
    from client.profile import identity_warning

    path = tmp_path / "office.toml"
    path.write_text('gateway = "vpn.example.org"\nauth = "eap-mschapv2"\n'
                    'eap_identity = "carol"\nremote_id = "%any"\n')
    warning = identity_warning(load_profile(path))
    assert warning and "\n" not in warning and "%any" in warning
    path.write_text('gateway = "vpn.example.org"\nauth = "eap-mschapv2"\neap_identity = "carol"\n')
    assert identity_warning(load_profile(path)) is None


def test_enterprise_eap_profile_keys(tmp_path):
    path = tmp_path / "corp.toml"
    path.write_text('gateway = "gw"\nauth = "eap"\neap_identity = "carol"\n'
                    'eap_methods = ["ttls", "gtc"]\neap_server_id = "radius.example.org"\n')
    p = load_profile(str(path))
    assert p.eap_method == "any" and p.eap_allowed == ("ttls", "gtc") and p.needs_password
    assert p.eap_server_id == "radius.example.org"
    assert load_profile(str(path)) == __import__("client.profile").profile.profile_from_dict(profile_to_dict(p), path)
    path.write_text('gateway = "gw"\nauth = "eap"\neap_identity = "c"\neap_methods = ["leap"]\n')
    with pytest.raises(ProfileError, match="key 'eap_methods': 'leap' is not one of"):
        load_profile(str(path))
    path.write_text('gateway = "gw"\nauth = "eap-ttls"\neap_identity = "c"\n')
    assert load_profile(str(path)).eap_allowed == ("ttls",)


def test_ttls_inner_key(tmp_path):
    path = tmp_path / "corp.toml"
    path.write_text('gateway = "gw"\nauth = "eap-ttls"\neap_identity = "c"\nttls_inner = "pap"\n')
    assert load_profile(str(path)).ttls_inner == "pap"
    path.write_text('gateway = "gw"\nauth = "eap-ttls"\neap_identity = "c"\nttls_inner = "chap"\n')
    with pytest.raises(ProfileError, match="key 'ttls_inner': 'chap' is not one of eap, pap"):
        load_profile(str(path))
