"""scripts/setup-debian.sh installs every package that ships what the lanes load.

The plugin lists are the ones charon, swanctl, pki and charon-nm are started with; the table in
testbed/requirements.py maps each to its Debian package (checked with dpkg -S). A plugin added to
a load list without a table entry, or a package missing from the setup script, fails here.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from testbed import requirements
from testbed.charon import CHARON_PLUGINS, SWANCTL_PLUGINS
from testbed.pki import PKI_PLUGINS
from tests.nm.sandbox import CHARON_NM_PLUGINS

SETUP = Path(__file__).resolve().parents[1] / "scripts" / "setup-debian.sh"
# Hard Depends of packages the script names (strongswan-charon -> strongswan-libcharon ->
# libstrongswan): apt installs them even with --no-install-recommends.
PULLED_IN_BY_DEPENDS = {"libstrongswan", "strongswan-libcharon"}
EXTRA_PLUGINS = ("ha",)          # tests/ha adds it to the gateway's load list


def setup_packages() -> set[str]:
    body = re.search(r"packages=\((.*?)\n\)", SETUP.read_text(), re.S).group(1)
    lines = (line.split("#", 1)[0] for line in body.splitlines())
    return {word for line in lines for word in line.split()}


def loaded_plugins() -> set[str]:
    return set(f"{CHARON_PLUGINS} {SWANCTL_PLUGINS} {PKI_PLUGINS} {CHARON_NM_PLUGINS}".split()
               + list(EXTRA_PLUGINS))


def test_every_loaded_plugin_has_a_package_in_the_table():
    assert loaded_plugins() - set(requirements.PLUGIN_PACKAGES) == set()


def test_setup_script_installs_the_package_of_every_loaded_plugin():
    needed = {requirements.PLUGIN_PACKAGES[name] for name in loaded_plugins()}
    assert needed - setup_packages() - PULLED_IN_BY_DEPENDS == set()


def test_setup_script_installs_the_package_of_every_program_a_lane_assumes():
    needed = set(requirements.PROGRAM_PACKAGES.values())
    assert needed - setup_packages() - PULLED_IN_BY_DEPENDS == set()


def test_the_recommends_that_broke_a_fresh_machine_are_named():
    # issue 12: --no-install-recommends skipped both; the openssl plugin and eap-mschapv2
    assert {"libstrongswan-standard-plugins", "libcharon-extauth-plugins"} <= setup_packages()


def test_a_missing_plugin_is_one_line_naming_plugin_and_package(tmp_path, monkeypatch):
    monkeypatch.setattr(requirements, "PLUGIN_DIR", tmp_path)
    (tmp_path / "libstrongswan-random.so").touch()
    lines = requirements.missing_plugins("random eap-mschapv2 openssl")
    assert len(lines) == 2
    assert "'eap-mschapv2'" in lines[0] and "libcharon-extauth-plugins" in lines[0]
    assert "'openssl'" in lines[1] and "libstrongswan-standard-plugins" in lines[1]
    assert all("\n" not in line for line in lines)


def test_require_plugins_refuses_to_start_naming_what_is_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(requirements, "PLUGIN_DIR", tmp_path)
    try:
        requirements.require_plugins(["gcm"], "gateway charon")
    except RuntimeError as error:
        assert "cannot start gateway charon" in str(error)
        assert "libstrongswan-standard-plugins" in str(error)
    else:
        raise AssertionError("require_plugins accepted a missing plugin")


def test_every_table_entry_names_the_package_that_owns_the_file_here():
    # Where strongSwan is installed (everything of setup-debian.sh), ask dpkg who owns each file.
    if shutil.which("dpkg") is None or not requirements.PLUGIN_DIR.is_dir():
        pytest.skip("no dpkg or no strongSwan here")
    paths = {str(requirements.plugin_path(name)): name for name in requirements.PLUGIN_PACKAGES}
    result = subprocess.run(["dpkg", "-S", *paths], capture_output=True, text=True)
    owners = {}
    for line in result.stdout.splitlines():
        package, path = line.split(": ", 1)
        owners[paths[path]] = package.split(":")[0]
    assert owners == requirements.PLUGIN_PACKAGES
