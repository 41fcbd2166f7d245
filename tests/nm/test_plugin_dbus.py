"""cygnet-nm-service's D-Bus contract where NetworkManager's own flows do not reach: errors,
states and exit, driven directly on the sandbox's system bus (the same bus NM uses)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.interop]

SERVICE = str(Path(sys.executable).parent / "cygnet-nm-service")
BUS_NAME = "org.freedesktop.NetworkManager.cygnet.Connection_99"
PATH = "/org/freedesktop/NetworkManager/VPN/Plugin"
INTERFACE = "org.freedesktop.NetworkManager.VPN.Plugin"
ERROR = "org.freedesktop.NetworkManager.VPN.Error"


def connection(data: dict, secrets: dict | None = None) -> dict:
    from dbus_fast import Variant

    vpn = {"service-type": Variant("s", "org.freedesktop.NetworkManager.cygnet"),
           "data": Variant("a{ss}", data)}
    if secrets is not None:
        vpn["secrets"] = Variant("a{ss}", secrets)
    return {"connection": {"id": Variant("s", "office"),
                           "uuid": Variant("s", "6f1c0d6e-0000-4000-8000-000000000099")},
            "vpn": vpn}


async def plugin_interface(address: str):
    from dbus_fast import BusType
    from dbus_fast.aio import MessageBus

    bus = await MessageBus(bus_address=address, bus_type=BusType.SYSTEM).connect()
    for _ in range(100):  # the service needs a moment to import and claim its name
        if await _has_owner(bus):
            break
        await asyncio.sleep(0.05)
    introspection = await bus.introspect(BUS_NAME, PATH)
    return bus, introspection, bus.get_proxy_object(BUS_NAME, PATH, introspection).get_interface(INTERFACE)


async def _has_owner(bus) -> bool:
    from dbus_fast import Message

    reply = await bus.call(Message(destination="org.freedesktop.DBus", path="/org/freedesktop/DBus",
                                   interface="org.freedesktop.DBus", member="NameHasOwner",
                                   signature="s", body=[BUS_NAME]))
    return bool(reply.body and reply.body[0])


def test_plugin_answers_like_libnm_and_exits_after_a_failed_connect(nm_testbed):
    from dbus_fast import DBusError

    testbed, nm = nm_testbed
    service = nm.popen([SERVICE, "--bus-name", BUS_NAME], "cygnet-nm-service by hand",
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # The sandbox's bus, reached through the holder's mount namespace.
    address = f"unix:path=/proc/{nm.holder.pid}/root/run/dbus/system_bus_socket"
    states = []

    async def talk():
        bus, introspection, plugin = await plugin_interface(address)
        interface = next(i for i in introspection.interfaces if i.name == INTERFACE)
        assert {s.name for s in interface.signals} >= {
            "StateChanged", "Config", "Ip4Config", "Ip6Config", "LoginBanner", "Failure"}
        plugin.on_state_changed(states.append)
        assert await plugin.get_state() == 1                       # INIT

        data = {"address": testbed.gateway_address, "method": "psk", "user": "psk@cygnet.test"}
        assert await plugin.call_need_secrets(connection(data)) == "vpn"
        assert await plugin.call_need_secrets(connection(data, {"password": "x" * 20})) == ""

        with pytest.raises(DBusError) as error:
            await plugin.call_connect_interactive(connection(data, {"password": "x" * 20}), {})
        assert error.value.type == f"{ERROR}.InteractiveNotSupported"
        with pytest.raises(DBusError) as error:
            await plugin.call_new_secrets(connection(data))
        assert error.value.type == f"{ERROR}.WrongState"

        with pytest.raises(DBusError) as error:
            # (method=agent is supported since issue 19; xauth is not)
            await plugin.call_connect(connection(dict(data, method="xauth"), {}))
        assert error.value.type == f"{ERROR}.BadArguments"
        assert "'xauth' is not one of psk, eap, eap-tls, cert, key" in error.value.text
        for _ in range(50):
            if 6 in states:
                break
            await asyncio.sleep(0.05)
        bus.disconnect()

    asyncio.run(talk())
    assert states == [6]                                           # STOPPED after the error reply
    assert service.wait(10) == 0                                   # and the process is gone
    output = service.popen.stdout.read()
    assert "cannot connect: vpn.data 'method'" in output


def test_disconnect_while_connecting_stops_and_exits(nm_testbed):
    testbed, nm = nm_testbed
    service = nm.popen([SERVICE, "--bus-name", BUS_NAME], "cygnet-nm-service by hand",
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    address = f"unix:path=/proc/{nm.holder.pid}/root/run/dbus/system_bus_socket"
    states = []

    async def talk():
        bus, _, plugin = await plugin_interface(address)
        plugin.on_state_changed(states.append)
        # Nobody answers IKE on this port: the tunnel stays in STARTING, retrying.
        data = {"address": testbed.gateway_address, "server-port": "4444", "method": "psk",
                "user": "psk@cygnet.test", "virtual": "yes"}
        await plugin.call_connect(connection(data, {"password": "x" * 20}))
        await asyncio.sleep(1.0)
        assert await plugin.get_state() == 3                       # STARTING
        await plugin.call_disconnect()
        for _ in range(100):
            if 6 in states:
                break
            await asyncio.sleep(0.05)
        bus.disconnect()

    asyncio.run(talk())
    assert states == [3, 5, 6]                                     # STARTING, STOPPING, STOPPED
    assert service.wait(10) == 0
    assert not [line for line in nm.run(["ip", "-o", "link"]).stdout.splitlines() if "cygnet" in line]
