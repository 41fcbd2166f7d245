"""Scenario ha-failover: the outage of each HA failover case, for Cygnet and for strongSwan's
own client through the same two-node strongSwan cluster (testbed/ha.py), in one run.

Per case, packet rate and client: a fresh cluster, the client connected with PSK, UDP probes
client -> LAN every 20 ms and LAN -> client at the case's rate (testbed/probes.py), the event,
then `window` seconds after the event is over (the stale-node case itself takes ~9 s).
Before the event the LAN sends BURST datagrams to the client. The figure is the longest gap per direction from the event on (None:
that direction had not come back when the window ended), plus whether it carried traffic at
the end of the window. Cases (issue 16):

    kill           SIGKILL of the active node (its links go down); the other takes over
    stop           SIGTERM of the active node: it hands the segment over on the way out
    lost-response  the active node dies right after parsing a request of the client's whose
                   answer never left it (Cygnet: its DPD, dpd = 3; charon: a CHILD_SA rekey
                   it is told to start, as its DPD waits for ESP silence)
    stale-node     the sync link breaks, the node holding the address rekeys the CHILD_SA,
                   dies 6 s later, and the node that missed the rekey takes over
"""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

from testbed import ClientOptions, PSK_IDENTITY, GATEWAY_NAME, wait_for
from testbed.ha import HaTestbed
from testbed.probes import ProbeStream

from .clients import CygnetClient, _private

CASES = ("kill", "stop", "lost-response", "stale-node")
# Datagrams the LAN sends the client before the event, so that the gateway's ESP counter is
# well on (a tunnel that has been up a while): a node restarting at 1 then needs
# BURST / rate seconds to pass it unless the client rekeys.
BURST = 3000
RATES = {"50pps": 0.02, "2pps": 0.5}
LAN_HOST = "10.1.0.10"


def run(pki, workdir: Path, cases=CASES, rates=RATES, window: float = 20.0, log=print) -> dict:
    results: dict = {}
    for case in cases:
        for rate, interval in rates.items():
            for kind in ("cygnet", "strongswan"):
                log(f"ha-failover: {case} at {rate}, {kind}")
                try:
                    results.setdefault(case, {}).setdefault(rate, {})[kind] = _one(
                        pki, workdir / f"{case}-{rate}-{kind}", case, interval, kind, window)
                except Exception as error:   # one case failing must not hide the others
                    results[case][rate][kind] = {"error": repr(error)}
    return results


def _one(pki, workdir: Path, case: str, interval: float, kind: str, window: float) -> dict:
    with HaTestbed(pki) as tb:
        client, vip, trigger = (_cygnet(tb, workdir) if kind == "cygnet" else _charon(tb))
        out = ProbeStream(tb.client_ns.name, tb.lan_ns.name, LAN_HOST, port=9901).start()
        back = ProbeStream(tb.lan_ns.name, tb.client_ns.name, vip, port=9902,
                           interval=interval).start()
        try:
            wait_for(lambda: len(out.arrivals) >= 10 and len(back.arrivals) >= 3, timeout=10,
                     message="no probes through the tunnel before the event")
            _blast(tb, vip, BURST)
            time.sleep(0.5)
            started = time.monotonic()
            _event(tb, case, trigger)
            taken_over = time.monotonic()
            time.sleep(window)
            ended = time.monotonic()
        finally:
            out.stop()
            back.stop()
            if kind == "cygnet":
                client.stop()

        def gap(stream, spacing):
            """Longest time without an arrival from the event on, None if the direction had
            not come back (nothing in the last 2 s + one spacing of the window)."""
            if stream.received_since(ended - 2 - spacing) == 0:
                return None
            return round(stream.longest_gap(since=started), 3)

        return {"out_gap_s": gap(out, 0.02), "back_gap_s": gap(back, interval),
                "event_s": round(taken_over - started, 2),
                "carrying_at_end": out.received_since(ended - 2) > 0
                and back.received_since(ended - 2 - interval) > 0}


def _blast(tb, destination: str, count: int) -> None:
    from testbed import netsock

    with netsock.socket_in(tb.lan_ns.name, socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for i in range(count):
            sock.sendto(b"x" * 32, (destination, 9903))
            if i % 200 == 199:
                time.sleep(0.005)   # let the gateway's libipsec keep up


def _event(tb, case: str, trigger) -> None:
    if case == "kill":
        tb.kill_active()
        tb.take_over()
    elif case == "stop":
        tb.stop_active()
        tb.take_over()
    elif case == "lost-response":
        tb.lose_next_response(trigger=trigger)
        tb.take_over()
    elif case == "stale-node":
        tb.split_and_rekey_then_fail_to_stale()
    else:
        raise ValueError(f"unknown case {case!r}")


def _cygnet(tb, workdir: Path):
    workdir.mkdir(parents=True, exist_ok=True)
    psk = _private(workdir / "psk", tb.gateway.psk)
    profile = _private(workdir / "ha.toml", "\n".join([
        f'gateway = "{tb.gateway_address}"', f'remote_id = "{GATEWAY_NAME}"', 'auth = "psk"',
        f'psk_file = "{psk}"', f'local_id = "{PSK_IDENTITY}"', "dpd = 3"]) + "\n")
    client = CygnetClient(tb, profile, workdir).start()

    def vip():
        for _, line in client.lines:
            found = re.match(r"virtual IP (\d+\.\d+\.\d+\.\d+)", line)
            if found:
                return found.group(1)
        return None

    address = wait_for(vip, timeout=20, message=lambda: "cygnet did not come up:\n"
                       + client.log_tail())
    wait_for(lambda: any(line.startswith("tunnel up") for _, line in client.lines), timeout=20)
    return client, address, None


def _charon(tb):
    client = tb.strongswan_client(ClientOptions(virtual_ips=("0.0.0.0",),
                                                remote_ts=("10.1.0.0/24",)))
    sa = client.connect("psk")
    return client, sa["local-vips"][0], lambda: client.charon.swanctl(
        "--rekey", "--child", "tunnel")
