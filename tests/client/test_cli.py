"""The `cygnet` command line (client/cli.py): arguments, exit codes, messages, start-up cost."""

import base64
import datetime
import json
import os
import subprocess
import sys
import types
import uuid
from pathlib import Path

import pytest

from client.cli import main
from tests.client.terminal import run_on_terminal

REPO = Path(__file__).resolve().parents[2]


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def profile_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    folder = tmp_path / "config" / "cygnet"
    folder.mkdir(parents=True)
    (folder / "office.toml").write_text('gateway = "vpn.example.org"\nauth = "psk"\nkeyring = true\n')
    return folder


# ---------------------------------------------------------------------------------------------
# Arguments


def test_help_exits_zero(capsys):
    code, out, err = run(capsys, "--help")
    assert code == 0 and out.startswith("usage: cygnet ") and err == ""
    for command in ("up", "down", "status", "import", "nm"):
        assert command in out


@pytest.mark.parametrize("argv,message", [
    ([], "cygnet: error: the following arguments are required: COMMAND"),
    (["connect"], "cygnet: error: argument COMMAND: invalid choice: 'connect'"),
    (["up"], "cygnet up: error: the following arguments are required: PROFILE"),
    (["up", "office", "--background"], "cygnet: error: unrecognized arguments: --background"),
    (["status", "--yaml"], "cygnet: error: unrecognized arguments: --yaml"),
    (["down", "a", "b"], "cygnet: error: unrecognized arguments: b"),
    (["import"], "cygnet import: error: the following arguments are required: FILE.sswan"),
    (["nm"], "cygnet nm: error: the following arguments are required: action"),
    (["nm", "reinstall"], "cygnet nm: error: argument action: invalid choice: 'reinstall'"),
])
def test_argument_errors_exit_2_with_usage(capsys, argv, message):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("usage: cygnet")
    assert message in err


def test_version(capsys):
    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.startswith("cygnet 0.")


def test_nm_install_writes_name_file_policy_and_dialog_under_prefix(capsys, tmp_path):
    import configparser

    code, out, err = run(capsys, "nm", "install", "--prefix", str(tmp_path))
    assert code == 0 and err == ""
    name_file = tmp_path / "etc/NetworkManager/VPN/nm-cygnet-service.name"
    policy = tmp_path / "etc/dbus-1/system.d/nm-cygnet-service.conf"
    assert f"wrote {name_file}" in out and f"wrote {policy}" in out
    # NetworkManager ignores .name files that group or others may write.
    for path in (name_file, policy):
        assert path.stat().st_mode & 0o777 == 0o644
    parsed = configparser.ConfigParser()
    parsed.read(name_file)
    vpn, gnome = parsed["VPN Connection"], parsed["GNOME"]
    assert vpn["name"] == "cygnet" and vpn["service"] == "org.freedesktop.NetworkManager.cygnet"
    assert vpn["supports-multiple-connections"] == "true"
    assert os.access(vpn["program"], os.X_OK) and vpn["program"].endswith("cygnet-nm-service")
    assert gnome["supports-external-ui-mode"] == "true"
    dialog = gnome["auth-dialog"]
    assert dialog.startswith("/")
    # Either the console script, or the launcher written under the prefix.
    installed = dialog if os.access(dialog, os.X_OK) else str(tmp_path) + dialog
    assert os.access(installed, os.X_OK)
    text = policy.read_text()
    assert 'own_prefix="org.freedesktop.NetworkManager.cygnet"' in text
    assert '<policy user="root">' in text

    # The tray applet starts with each desktop session, as the user, with its own icon.
    autostart = configparser.ConfigParser(interpolation=None)
    autostart.read(tmp_path / "etc/xdg/autostart/cygnet-tray.desktop")
    entry = autostart["Desktop Entry"]
    assert entry["Exec"].endswith("cygnet-tray") and entry["Icon"] == "cygnet"
    icon = tmp_path / "usr/share/icons/hicolor/scalable/apps/cygnet.svg"
    assert icon.read_text().lstrip().startswith("<") and icon.stat().st_mode & 0o777 == 0o644

    # The dialog speaks NetworkManager's external UI protocol.
    result = subprocess.run([installed, "-u", "u-1", "-n", "office", "-s", "x", "-i",
                             "--external-ui-mode"], input="DATA_KEY=method\nDATA_VAL=eap\nDONE\n",
                            capture_output=True, text=True, timeout=30,
                            env={**os.environ, "PYTHON_KEYRING_BACKEND": "keyring.backends.fail.Keyring"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("[VPN Plugin UI]\n")
    assert "[password]" in result.stdout and "ShouldAsk=true" in result.stdout


def test_nm_uninstall_removes_what_install_wrote(capsys, tmp_path):
    assert run(capsys, "nm", "install", "--prefix", str(tmp_path))[0] == 0
    code, out, err = run(capsys, "nm", "uninstall", "--prefix", str(tmp_path))
    assert code == 0 and err == "" and "removed" in out
    assert not list(tmp_path.rglob("*cygnet*"))
    code, out, _ = run(capsys, "nm", "uninstall", "--prefix", str(tmp_path))
    assert code == 0 and out == f"nothing to remove under {tmp_path}\n"


def test_nm_install_reports_an_unwritable_prefix(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, out, err = run(capsys, "nm", "install", "--prefix", str(blocker))
    assert code == 1 and err.startswith("cygnet: nm install: ")


# ---------------------------------------------------------------------------------------------
# up / down / status


def test_up_with_an_unknown_profile(capsys, profile_dir):
    code, out, err = run(capsys, "up", "home")
    assert code == 1 and out == ""
    assert err.startswith("cygnet: no profile named 'home' (looked for ")


def test_up_with_a_bad_profile_names_file_and_key(capsys, profile_dir):
    (profile_dir / "bad.toml").write_text('gateway = "gw"\nauth = "eap-foo"\n')
    code, _, err = run(capsys, "up", "bad")
    assert code == 1
    assert err == (f"cygnet: {profile_dir}/bad.toml: key 'auth': 'eap-foo' is not one of psk, pubkey, "
                   "eap-mschapv2, eap-md5, eap-tls, pubkey+eap-mschapv2, pubkey+eap-md5\n")


def test_engine_commands_call_the_engine_entry_points(capsys, profile_dir, monkeypatch):
    """The CLI side of the contract with client.commands (up/down/status over the engine):
    what each command passes and returns. A stand-in module records the calls (the real
    engine would open sockets)."""
    calls = []
    engine = types.ModuleType("client.commands")
    engine.up = lambda profile, daemon: calls.append(("up", profile.name, profile.gateway, daemon)) or 0
    engine.down = lambda name: calls.append(("down", name)) or 3
    engine.status = lambda as_json: calls.append(("status", as_json)) or 0
    monkeypatch.setitem(sys.modules, "client.commands", engine)
    assert main(["up", "office", "--daemon"]) == 0
    assert main(["up", str(profile_dir / "office.toml")]) == 0
    assert main(["down"]) == 3
    assert main(["down", "office"]) == 3
    assert main(["status", "--json"]) == 0
    assert main(["status"]) == 0
    assert calls == [("up", "office", "vpn.example.org", True), ("up", "office", "vpn.example.org", False),
                     ("down", None), ("down", "office"), ("status", True), ("status", False)]


# ---------------------------------------------------------------------------------------------
# import


def sswan(tmp_path, **extra) -> Path:
    obj = {"uuid": str(uuid.uuid4()), "name": "Lab Gateway", "type": "ikev2-eap",
           "remote": {"addr": "lab.example.org"}, "local": {"eap_id": "dave"}}
    obj.update(extra)
    path = tmp_path / "lab.sswan"
    path.write_text(json.dumps(obj))
    return path


def test_import_writes_the_profile_and_prints_warnings(capsys, tmp_path):
    path = sswan(tmp_path, **{"nat-keepalive": 20})
    code, out, err = run(capsys, "import", str(path), "--dir", str(tmp_path / "p"))
    assert code == 0
    assert out == f"wrote {tmp_path}/p/lab-gateway.toml; connect with: cygnet up lab-gateway\n"
    assert err == (f"cygnet: warning: {path}: field 'nat-keepalive' is not supported: Cygnet's default "
                   "NAT keepalive interval is used\n")
    code, out, err = run(capsys, "import", str(path), "--dir", str(tmp_path / "p"), "--name", "lab")
    assert code == 0 and (tmp_path / "p" / "lab.toml").is_file()


def test_import_errors_exit_1(capsys, tmp_path):
    code, out, err = run(capsys, "import", str(tmp_path / "missing.sswan"), "--dir", str(tmp_path))
    assert code == 1 and out == ""
    assert err == f"cygnet: {tmp_path}/missing.sswan: cannot be read: No such file or directory\n"
    path = sswan(tmp_path, type="ikev2-psk")
    code, _, err = run(capsys, "import", str(path), "--dir", str(tmp_path))
    assert code == 1 and err.startswith(f"cygnet: {path}: field 'type': 'ikev2-psk' is not one of ")
    path = sswan(tmp_path)
    assert run(capsys, "import", str(path), "--dir", str(tmp_path))[0] == 0
    code, _, err = run(capsys, "import", str(path), "--dir", str(tmp_path))
    assert code == 1 and err == (f"cygnet: {tmp_path}/lab-gateway.toml already exists "
                                 "(use --force to replace it)\n")
    assert run(capsys, "import", str(path), "--dir", str(tmp_path), "--force")[0] == 0


def test_import_asks_the_pkcs12_password_on_a_terminal(tmp_path):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "dave")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    p12 = pkcs12.serialize_key_and_certificates(b"dave", key, cert, None,
                                                serialization.BestAvailableEncryption(b"unlock-me"))
    path = sswan(tmp_path, type="ikev2-cert", local={"p12": base64.b64encode(p12).decode()})
    out = run_on_terminal([sys.executable, "-m", "client.cli", "import", str(path), "--dir", str(tmp_path)],
                          b"unlock-me\n")
    assert f"Password for the PKCS#12 in {path} (local.p12): " in out
    assert "unlock-me" not in out
    assert f"wrote {tmp_path}/lab-gateway.toml" in out
    written = serialization.load_pem_private_key((tmp_path / "lab-gateway" / "key.pem").read_bytes(), None)
    assert written.public_key() == key.public_key()


# ---------------------------------------------------------------------------------------------
# Running as a program


def test_python_m_client_cli_help():
    result = subprocess.run([sys.executable, "-m", "client.cli", "--help"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("usage: cygnet ")


def test_bad_arguments_as_a_program_exit_2():
    result = subprocess.run([sys.executable, "-m", "client.cli", "frobnicate"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "invalid choice: 'frobnicate'" in result.stderr


def test_start_up_imports_stay_light():
    script = ("import sys; from client.cli import main; code = main(['--help']);"
              "heavy = [m for m in ('cryptography', 'pyroute2', 'asyncio', 'keyring', 'tomllib', 'typing')"
              " if m in sys.modules]; print(heavy)")
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0
    assert result.stdout.strip().splitlines()[-1] == "[]"


UP_IMPORTS = (
    "from client.cli import build_parser; build_parser().parse_args(['up', 'x']);"
    "import client.profile, client.commands, ike.session, client.dataplane, client.tun,"
    " client.netconfig, client.dns, client.secrets, client.control;")
NM_SERVICE_IMPORTS = "import nm_plugin.service, ike.session, client.dataplane;"


@pytest.mark.parametrize("imports", [UP_IMPORTS, NM_SERVICE_IMPORTS], ids=["cygnet-up", "nm-service"])
def test_a_tunnel_process_leaves_out_a_second_openssl_and_the_archive_codecs(imports):
    """cryptography carries its own OpenSSL: ssl or _hashlib would load the system's as well
    (~4 MB resident); shutil loads bz2/lzma/zlib; pyroute2 and the XFRM code belong to the
    netlink agent. None of these may creep back into `cygnet up` or the NetworkManager
    plugin, and hashlib where loaded (dbus-fast uses it) must work, on CPython's own hashes."""
    script = (
        "import sys;" + imports +
        "from ike.keyexchange import make_key_exchange; make_key_exchange(31).public_bytes();"
        "unwanted = [m for m in ('ssl', '_ssl', '_hashlib', 'hmac', 'shutil', 'lzma', 'bz2',"
        " 'pyroute2.iproute', 'client.kernel_dataplane', 'client.xfrm') if m in sys.modules];"
        "hashlib = sys.modules.get('hashlib');"
        "assert not hashlib or hashlib.sha256(b'abc').hexdigest().startswith('ba7816bf');"
        "import ssl; print(unwanted)")  # ssl itself stays importable for whoever needs it
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_nm_install_has_its_own_entry_point(capsys, tmp_path):
    """nm_plugin/install.py is the program (`cygnet-nm-install`); `cygnet nm` calls it."""
    from nm_plugin.install import NAME_FILE, main as nm_install

    assert nm_install(["install", "--prefix", str(tmp_path / "a")]) == 0
    own = capsys.readouterr()
    assert run(capsys, "nm", "install", "--prefix", str(tmp_path / "b"))[:2] == (
        0, own.out.replace(str(tmp_path / "a"), str(tmp_path / "b")))
    assert (tmp_path / "a" / NAME_FILE).read_text() == (tmp_path / "b" / NAME_FILE).read_text()
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert nm_install(["install", "--prefix", str(blocker)]) == 1
    assert capsys.readouterr().err.startswith("cygnet-nm-install: install: ")
