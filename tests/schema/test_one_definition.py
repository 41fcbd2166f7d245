"""connection_schema is the one owner of the connection schema: it imports no Qt, D-Bus or
product layer; the GUI reaches the schema only through it; the password methods and the
keyring names have one definition that every surface agrees with."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from connection_schema import naming, profile, vpn_data

REPO = Path(__file__).resolve().parents[2]
# The layers above the protocol core (ike/eap.py's PASSWORD_METHODS names EAP methods, a
# protocol-level set, not profile auths).
PRODUCT = ("connection_schema", "client", "nm_plugin", "gui")


def product_sources():
    for package in PRODUCT:
        yield from sorted((REPO / package).rglob("*.py"))


def test_the_schema_package_imports_no_qt_no_dbus_and_no_upper_layer():
    modules = [p.stem for p in (REPO / "connection_schema").glob("*.py") if p.stem != "__init__"]
    script = ("import sys, importlib;"
              f"[importlib.import_module('connection_schema.' + m) for m in {modules!r}];"
              "print(sorted({m.split('.')[0] for m in sys.modules} & "
              "{'PyQt6', 'dbus_fast', 'client', 'nm_plugin', 'gui', 'keyring'}))")
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_gui_imports_neither_client_nor_the_protocol_core():
    for path in sorted((REPO / "gui").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name.split(".")[0] not in ("client", "ike"), f"{path.name} imports {name}"


@pytest.mark.parametrize("pattern", [r"^\s*KEYRING_SERVICE\s*=", r"f\"nm-\{", r"^\s*PASSWORD_METHODS\s*=\s*\("])
def test_one_definition(pattern):
    found = [f"{p.relative_to(REPO)}:{n}" for p in product_sources()
             for n, line in enumerate(p.read_text().splitlines(), 1) if re.search(pattern, line)]
    assert len(found) == 1 and found[0].startswith("connection_schema/"), found


@pytest.mark.parametrize("method", vpn_data.METHODS)
def test_every_surface_agrees_which_methods_need_a_password(method):
    from gui.connection import VpnConnection
    from nm_plugin import auth_dialog
    from nm_plugin.vpn_data import needed_secret

    auth = vpn_data._AUTH_OF_METHOD[method]
    expected = auth in profile.SECRET_METHODS
    connection = {"connection": {"uuid": "u"}, "vpn": {"data": {"method": method}, "secrets": {}}}
    assert (needed_secret(connection) == "vpn") is expected
    assert auth_dialog.password_needed({"method": method}) is expected
    assert VpnConnection(id="x", data={"method": method}).needs_password is expected


def test_keyring_names_are_shared():
    from client import secrets
    from gui import secret_agent
    from gui.connection import VpnConnection
    from nm_plugin import auth_dialog

    assert secrets.KEYRING_SERVICE is auth_dialog.KEYRING_SERVICE is secret_agent.KEYRING_SERVICE \
        is naming.KEYRING_SERVICE == "cygnet"
    uuid = "0b7e2c44-1111-2222-3333-444455556666"
    assert VpnConnection(id="x", uuid=uuid).keyring_user == naming.keyring_user(uuid) == f"nm-{uuid}"
    assert vpn_data.profile_from_vpn_data({"address": "gw", "method": "eap", "user": "u"}, uuid).name \
        == naming.keyring_user(uuid)
