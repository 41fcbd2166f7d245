"""What a lane loads, checked before it starts, with the Debian package that ships each piece.

charon starts even when a plugin in its `load` list is missing (it only logs "plugin 'X':
failed to load"), and the failure shows up much later, e.g. as an EAP-Failure. So the testbed
checks every plugin file first and names the package to install (scripts/setup-debian.sh).
Each entry of PLUGIN_PACKAGES was checked with `dpkg -S` on Debian 12 (strongSwan 5.9.8).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

PLUGIN_DIR = Path("/usr/lib/ipsec/plugins")

PLUGIN_PACKAGES = {
    # libstrongswan itself
    **dict.fromkeys((
        "random nonce pem pkcs1 pkcs8 pkcs12 x509 constraints pubkey aes sha1 sha2 md5 hmac "
        "kdf kernel-netlink resolve revocation attr xcbc rc2 sshkey dnskey fips-prf pgp").split(),
        "libstrongswan"),
    # Recommends of libstrongswan, skipped by --no-install-recommends
    **dict.fromkeys("openssl gcm aesni agent".split(), "libstrongswan-standard-plugins"),
    **dict.fromkeys("eap-mschapv2 xauth-generic".split(), "libcharon-extauth-plugins"),
    **dict.fromkeys((
        "kernel-libipsec eap-identity eap-md5 eap-tls eap-ttls eap-gtc eap-radius eap-tnc ha "
        "dhcp unity farp").split(), "libcharon-extra-plugins"),
    **dict.fromkeys("curve25519 chapoly gcrypt pkcs11 cmac ctr ccm curl ldap".split(),
                    "libstrongswan-extra-plugins"),
    "socket-default": "strongswan-libcharon",
    "vici": "strongswan-swanctl",
}

# Programs and directories the lanes assume, with the package that provides each.
PROGRAM_PACKAGES = {
    "/usr/lib/ipsec/charon": "strongswan-charon",
    "/usr/lib/ipsec/charon-nm": "strongswan-nm",
    "ip": "iproute2", "nft": "nftables", "unshare": "util-linux", "nsenter": "util-linux",
    "swanctl": "strongswan-swanctl", "pki": "strongswan-pki",
    "tcpdump": "tcpdump", "iperf3": "iperf3", "ping": "iputils-ping",
    "/usr/sbin/NetworkManager": "network-manager", "nmcli": "network-manager",
    "dbus-daemon": "dbus-daemon",
    "qemu-system-x86_64": "qemu-system-x86", "/bin/busybox": "busybox-static",
    "Xvfb": "xvfb", "xauth": "xauth", "trayer": "trayer",
    "gnome-keyring-daemon": "gnome-keyring", "dunst": "dunst", "dbus-run-session": "dbus-daemon",
}
NM_VPN_DIR = Path("/usr/lib/NetworkManager/VPN")


def plugin_path(name: str) -> Path:
    return PLUGIN_DIR / f"libstrongswan-{name}.so"


def missing_plugin(name: str) -> str | None:
    """One line naming `name` and its package if its file is absent, else None."""
    if plugin_path(name).exists():
        return None
    package = PLUGIN_PACKAGES.get(name, "unknown: add it to testbed/requirements.py")
    return (f"strongSwan plugin {name!r} missing ({plugin_path(name)}); "
            f"install Debian package {package} (scripts/setup-debian.sh)")


def missing_plugins(load: str | tuple[str, ...] | list[str]) -> list[str]:
    """One line per plugin of a charon `load` list whose file is absent."""
    names = load.split() if isinstance(load, str) else list(load)
    return [line for line in map(missing_plugin, names) if line]


def missing_program(program: str) -> str | None:
    """One line naming `program` and its package if it is not installed, else None."""
    found = os.access(program, os.X_OK) if program.startswith("/") else shutil.which(program)
    if found:
        return None
    package = PROGRAM_PACKAGES.get(program, "unknown")
    return f"{program} missing; install Debian package {package} (scripts/setup-debian.sh)"


def missing_programs(*programs: str) -> list[str]:
    return [line for line in map(missing_program, programs) if line]


def require_plugins(load: str | tuple[str, ...] | list[str], who: str = "charon") -> None:
    """Raise RuntimeError with one line per missing plugin (before starting `who`)."""
    missing = missing_plugins(load)
    if missing:
        raise RuntimeError(f"cannot start {who}: " + "; ".join(missing))
