"""cygnet-nm-auth-dialog: asks for a Cygnet VPN connection's password on NetworkManager's behalf.

NetworkManager's agents (nmcli --ask, nm-applet, GNOME Shell) run the `auth-dialog=` of the
.name file when the plugin's NeedSecrets answered "vpn":

    cygnet-nm-auth-dialog -u UUID -n NAME -s SERVICE [-i] [-r] [-t HINT] [--external-ui-mode]

and write the connection's data and existing secrets to its stdin:

    DATA_KEY=method / DATA_VAL=psk / SECRET_KEY=password / SECRET_VAL=… / DONE

External UI mode (what nmcli uses): the dialog only *describes* the secrets; the agent asks.
It prints a keyfile and exits:

    [VPN Plugin UI]
    Version=2
    Description=…
    Title=…

    [password]
    Value=<known value, or empty>
    Label=Password:
    IsSecret=true
    ShouldAsk=true|false

Plain mode (older agents): the dialog asks itself, on the terminal, then prints
"password\\nVALUE\\n\\n\\n" and waits for QUIT on stdin.

A password already known (from NetworkManager or, failing that, the user's keyring: service
"cygnet", user "nm-UUID", as `keyring set cygnet nm-UUID`) is offered without asking, unless
-r (re-prompt: the last one was wrong) is given. The secret goes only to stdout, the agent's pipe.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, TextIO

from connection_schema.held_keys import is_agent, is_smartcard
from connection_schema.naming import KEYRING_SERVICE, keyring_user
from connection_schema.vpn_data import SECRET_FLAG_NOT_REQUIRED, SECRET_FLAG_NOT_SAVED  # noqa: F401
from connection_schema.vpn_data import CERTIFICATE_METHODS
from connection_schema.vpn_data import password_needed as vpn_password_needed


def read_details(stream: TextIO) -> tuple[dict, dict]:
    """DATA_KEY/DATA_VAL and SECRET_KEY/SECRET_VAL pairs up to DONE (libnm's format; a line
    starting with '=' continues the previous value)."""
    data: dict = {}
    secrets: dict = {}
    key = target = None
    last: Optional[tuple[dict, str]] = None
    for raw in stream:
        line = raw.rstrip("\n")
        if line == "DONE":
            break
        if line.startswith("=") and last is not None:
            table, name = last
            table[name] += "\n" + line[1:]
            continue
        for prefix, table in (("DATA_KEY=", data), ("SECRET_KEY=", secrets)):
            if line.startswith(prefix):
                key, target = line[len(prefix):], table
        for prefix, table in (("DATA_VAL=", data), ("SECRET_VAL=", secrets)):
            if line.startswith(prefix) and key is not None and target is table:
                table[key] = line[len(prefix):]
                last = (table, key)
                key = None
    return data, secrets


def password_needed(data: dict) -> bool:
    if not vpn_password_needed(data):
        return False  # certificate methods: only an encrypted key has a passphrase to ask for
    try:
        flags = int(data.get("password-flags", "0"))
    except ValueError:
        flags = 0
    return not flags & SECRET_FLAG_NOT_REQUIRED


def keyring_password(uuid: str) -> Optional[str]:
    """The password stored in the user's keyring for this connection, if any."""
    if not uuid:
        return None
    try:
        import keyring

        return keyring.get_password(KEYRING_SERVICE, keyring_user(uuid))
    except Exception:  # no keyring backend, locked, no session bus: just ask
        return None


def label_for(data: dict) -> str:
    if is_smartcard(data):
        return "PIN:"
    if data.get("method") in CERTIFICATE_METHODS:
        return "Private key password:"
    return "Pre-shared key:" if data.get("method") == "psk" else "Password:"


def external_ui_keyfile(name: str, data: dict, known: Optional[str], reprompt: bool) -> str:
    lines = ["[VPN Plugin UI]", "Version=2",
             f"Description=The VPN connection '{name}' needs a password.",
             "Title=Authenticate VPN", ""]
    if is_agent(data) and os.environ.get("SSH_AUTH_SOCK"):  # as strongSwan's dialog does
        lines += ["[agent]", f"Value={_escape(os.environ['SSH_AUTH_SOCK'])}",
                  "Label=SSH agent socket:", "IsSecret=true", "ShouldAsk=false", ""]
    if password_needed(data):
        ask = reprompt or not known
        lines += ["[password]", f"Value={'' if ask else _escape(known)}",
                  f"Label={label_for(data)}", "IsSecret=true",
                  f"ShouldAsk={'true' if ask else 'false'}", ""]
    return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    # GKeyFile escapes: backslash, newline, and leading spaces.
    value = value.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")
    if value.startswith(" "):
        value = "\\s" + value[1:]
    return value


def prompt_terminal(prompt: str) -> Optional[str]:
    """Ask on the controlling terminal (not stdin: that is the agent's pipe)."""
    import getpass

    try:
        with open("/dev/tty", "r+") as tty:
            return getpass.getpass(prompt + " ", stream=tty)
    except OSError:
        return None


def main(argv: Optional[list] = None) -> int:
    parser = argparse.ArgumentParser(prog="cygnet-nm-auth-dialog")
    parser.add_argument("-u", "--uuid", default="")
    parser.add_argument("-n", "--name", default="VPN")
    parser.add_argument("-s", "--service", default="")
    parser.add_argument("-i", "--allow-interaction", action="store_true")
    parser.add_argument("-r", "--reprompt", action="store_true")
    parser.add_argument("-t", "--hint", action="append", default=[])
    parser.add_argument("--external-ui-mode", action="store_true")
    args = parser.parse_args(argv)

    data, secrets = read_details(sys.stdin)
    known = None if args.reprompt else (secrets.get("password") or keyring_password(args.uuid))

    if args.external_ui_mode:
        sys.stdout.write(external_ui_keyfile(args.name, data, known, args.reprompt))
        sys.stdout.flush()
        return 0

    if is_agent(data) and os.environ.get("SSH_AUTH_SOCK"):
        sys.stdout.write(f"agent\n{os.environ['SSH_AUTH_SOCK']}\n\n\n")
    elif not password_needed(data):
        sys.stdout.write("\n\n")
    else:
        password = known
        if password is None and args.allow_interaction:
            password = prompt_terminal(f"{label_for(data)[:-1]} for VPN '{args.name}':")
        if password is None:
            return 1  # nothing known and no way to ask: the agent reports the missing secret
        sys.stdout.write(f"password\n{password}\n\n\n")
    sys.stdout.flush()
    # The old protocol: stay until the agent says QUIT (or closes the pipe).
    for line in sys.stdin:
        if line.strip() == "QUIT":
            break
    return 0


if __name__ == "__main__":
    sys.exit(main())
