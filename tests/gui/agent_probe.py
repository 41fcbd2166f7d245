"""Run Cygnet's SecretAgent on the session bus and call it the way NetworkManager does.

    python -m tests.gui.agent_probe get UUID [--flags N] [--service-type T] [--answer PW [--remember]]
    python -m tests.gui.agent_probe save UUID        (the new password on stdin)
    python -m tests.gui.agent_probe delete UUID

Prints one JSON object: {"secrets": {...}} or {"error": "<D-Bus error name>"}. The keyring is
whatever the session offers (the tests run gnome-keyring's Secret Service).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from dbus_fast import BusType, Message, MessageType, Variant
from dbus_fast.aio import MessageBus

from gui.connection import SERVICE_TYPE
from gui.secret_agent import AGENT_IFACE, AGENT_PATH, SecretAgent


def settings(uuid: str, service_type: str, password: str = "", method: str = "eap") -> dict:
    data = {"address": "gw", "method": method, "user": "carol", "password-flags": "1"}
    if method == "agent":
        data = {"address": "gw", "method": "agent", "usercert": "/c.pem", "agent-flags": "1"}
    vpn = {"service-type": Variant("s", service_type), "data": Variant("a{ss}", data)}
    if password:
        vpn["secrets"] = Variant("a{ss}", {"password": password})
    return {"connection": {"id": Variant("s", "office"), "uuid": Variant("s", uuid),
                           "type": Variant("s", "vpn")}, "vpn": vpn}


async def main(args) -> dict:
    agent_bus = await MessageBus(bus_type=BusType.SESSION).connect()
    prompts = []

    async def prompt(connection, retry):
        # Stands in for the dialog (tests/gui/test_password_dialog.py tests that one): the "user"
        # types --answer and ticks "remember" when --remember is given.
        prompts.append({"id": connection.id, "retry": retry})
        return (args.answer, args.remember) if args.answer else None

    agent_bus.export(AGENT_PATH, SecretAgent(prompt=prompt if args.answer is not None else None))
    caller = await MessageBus(bus_type=BusType.SESSION).connect()
    path = "/org/freedesktop/NetworkManager/Settings/1"
    if args.action == "get":
        member, signature = "GetSecrets", "a{sa{sv}}osasu"
        body = [settings(args.uuid, args.service_type, method=args.method), path, "vpn", [],
                args.flags]
    elif args.action == "save":
        member, signature = "SaveSecrets", "a{sa{sv}}o"
        body = [settings(args.uuid, args.service_type, sys.stdin.read()), path]
    else:
        member, signature = "DeleteSecrets", "a{sa{sv}}o"
        body = [settings(args.uuid, args.service_type), path]
    reply = await caller.call(Message(destination=agent_bus.unique_name, path=AGENT_PATH,
                                      interface=AGENT_IFACE, member=member, signature=signature,
                                      body=body))
    agent_bus.disconnect()
    caller.disconnect()
    if reply.message_type == MessageType.ERROR:
        return {"error": reply.error_name}
    if not reply.body:
        return {"done": True}
    if prompts:
        return {"prompts": prompts, "secrets": _plain(reply.body[0])}
    return {"secrets": _plain(reply.body[0])}


def _plain(settings: dict) -> dict:
    return {group: {k: getattr(v, "value", v) for k, v in values.items()}
            for group, values in settings.items()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("action", choices=("get", "save", "delete"))
    parser.add_argument("uuid")
    parser.add_argument("--flags", type=int, default=0)
    parser.add_argument("--service-type", default=SERVICE_TYPE)
    parser.add_argument("--answer", help="what the user types when prompted (default: no prompt)")
    parser.add_argument("--remember", action="store_true")
    parser.add_argument("--method", default="eap", help="vpn.data method (eap or agent)")
    parser.add_argument("--ssh-auth-sock", help="the applet's SSH_AUTH_SOCK")
    parsed = parser.parse_args()
    if parsed.ssh_auth_sock:
        import os

        os.environ["SSH_AUTH_SOCK"] = parsed.ssh_auth_sock
    print(json.dumps(asyncio.run(main(parsed))))
