"""Encrypted PEM and PKCS#12 keys in profiles (client/credentials.py): the passphrase from a
mode-600 file or the keyring, and one clear line when it is missing or wrong."""

from __future__ import annotations

import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from client.credentials import CredentialError, load_credential
from client.profile import load_profile

PASSPHRASE = b"open sesame"


@pytest.fixture
def credential(tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dave")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(7).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    for name, fmt in (("pkcs8.pem", serialization.PrivateFormat.PKCS8),
                      ("traditional.pem", serialization.PrivateFormat.TraditionalOpenSSL)):
        path = tmp_path / name
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, fmt,
                                           serialization.BestAvailableEncryption(PASSPHRASE)))
        path.chmod(0o600)
    (tmp_path / "bundle.p12").write_bytes(pkcs12.serialize_key_and_certificates(
        b"dave", key, cert, None, serialization.BestAvailableEncryption(PASSPHRASE)))
    (tmp_path / "bundle.p12").chmod(0o600)
    secret = tmp_path / "passphrase"
    secret.write_bytes(PASSPHRASE + b"\n")
    secret.chmod(0o600)
    return key, cert, tmp_path


def profile(folder, text: str, name="office"):
    path = folder / f"{name}.toml"
    path.write_text('gateway = "gw"\nauth = "pubkey"\n' + text)
    return load_profile(str(path))


@pytest.mark.parametrize("key_file", ["pkcs8.pem", "traditional.pem"])
def test_encrypted_pem_with_a_passphrase_file(credential, key_file):
    key, cert, folder = credential
    p = profile(folder, f'cert = "cert.pem"\nkey = "{key_file}"\n'
                        'key_passphrase_file = "passphrase"\n')
    got_cert, got_key, chain = load_credential(p)
    assert got_cert == cert and got_key.public_key() == key.public_key() and chain == []


def test_pkcs12_without_cert_key(credential):
    key, cert, folder = credential
    p = profile(folder, 'key = "bundle.p12"\nkey_passphrase_file = "passphrase"\n')
    got_cert, got_key, _ = load_credential(p)
    assert got_cert == cert and got_key.public_key() == key.public_key()


def test_missing_and_wrong_passphrases_are_one_clear_line(credential):
    _, _, folder = credential
    p = profile(folder, 'cert = "cert.pem"\nkey = "pkcs8.pem"\n')
    with pytest.raises(CredentialError, match=r"pkcs8.pem is encrypted: set 'key_passphrase_file'"
                                              r".*keyring set cygnet office:key"):
        load_credential(p)
    with pytest.raises(CredentialError, match="bundle.p12 is protected by a password"):
        load_credential(profile(folder, 'key = "bundle.p12"\n'))
    (folder / "wrong").write_text("not it")
    (folder / "wrong").chmod(0o600)
    for key_file, words in (("pkcs8.pem", "wrong passphrase"), ("bundle.p12", "wrong password")):
        p = profile(folder, f'cert = "cert.pem"\nkey = "{key_file}"\nkey_passphrase_file = "wrong"\n')
        with pytest.raises(CredentialError, match=words) as info:
            load_credential(p)
        assert "not it" not in str(info.value)


def test_passphrase_file_readable_by_others_is_refused(credential):
    _, _, folder = credential
    (folder / "passphrase").chmod(0o644)
    p = profile(folder, 'cert = "cert.pem"\nkey = "pkcs8.pem"\nkey_passphrase_file = "passphrase"\n')
    with pytest.raises(CredentialError, match="accessible by group or others.*chmod 600"):
        load_credential(p)


def test_passphrase_from_the_keyring(credential, tmp_path, monkeypatch):
    pytest.importorskip("keyrings.alt")
    import keyring
    import keyring.core

    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyrings.alt.file.PlaintextKeyring")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    keyring.core.init_backend()
    try:
        key, _, folder = credential
        keyring.set_password("cygnet", "corp:key", PASSPHRASE.decode())
        p = profile(folder, 'key = "bundle.p12"\nkeyring = true\n', name="corp")
        assert load_credential(p)[1].public_key() == key.public_key()
    finally:
        monkeypatch.undo()
        keyring.core.init_backend()


def test_cygnet_up_asks_for_the_passphrase_on_a_terminal(credential, monkeypatch):
    from client import credentials

    _, cert, folder = credential
    p = profile(folder, 'cert = "cert.pem"\nkey = "pkcs8.pem"\n', name="typed")
    monkeypatch.setattr("client.secrets.stdin_is_terminal", lambda: False)
    credentials.ask_key_passphrase(p, ask=lambda prompt: pytest.fail("asked without a terminal"))
    with pytest.raises(CredentialError, match="is encrypted"):
        load_credential(p)
    monkeypatch.setattr("client.secrets.stdin_is_terminal", lambda: True)
    prompts = []
    credentials.ask_key_passphrase(p, ask=lambda prompt: prompts.append(prompt) or "open sesame")
    assert prompts == [f"Passphrase for our private key {folder / 'pkcs8.pem'} ('typed'): "]
    assert load_credential(p)[0] == cert
    # a passphrase file is used instead of asking
    p2 = profile(folder, 'cert = "cert.pem"\nkey = "pkcs8.pem"\nkey_passphrase_file = "passphrase"\n',
                 name="filed")
    credentials.ask_key_passphrase(p2, ask=lambda prompt: pytest.fail("asked despite the file"))
    monkeypatch.delitem(credentials._typed, "typed")
