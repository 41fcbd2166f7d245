"""One end of the back-to-back data-plane benchmark (run by bench/backtoback.py).

    python -m bench.dataplane_endpoint '{"addr": ..., "peer_addr": ..., "vip": ..., ...}'

A TUN device with address `vip`, a UDP socket on `addr`:4500 and a Cygnet UserspaceDataPlane
with one made-up CHILD_SA (keys from the JSON; the other end gets the mirror image). Prints
"ready <tun>" when traffic can flow and its counters as JSON on SIGTERM.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import signal
import socket
import sys

from client.dataplane import UserspaceDataPlane
from client.tun import TunDevice
from ike.events import ChildSaEstablished


def main(conf: dict) -> None:
    # Configured before the event loop runs: pyroute2 runs a loop of its own.
    tun = TunDevice.create("cygb%d", vnet_hdr=conf.get("vnet_hdr", False), tso=conf.get("tso", False))
    tun.configure([conf["vip"] + "/32"], mtu=conf.get("mtu", 1400), routes=[conf["peer_vip"] + "/32"])
    asyncio.run(serve(conf, tun))


async def serve(conf: dict, tun: TunDevice) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((conf["addr"], 4500))
    sa = ChildSaEstablished(1, bytes.fromhex(conf["spi_in"]), bytes.fromhex(conf["spi_out"]),
                            conf["encr_id"], conf["bits"], conf["integ_id"], False,
                            bytes.fromhex(conf["ek_in"]), bytes.fromhex(conf["ik_in"]),
                            bytes.fromhex(conf["ek_out"]), bytes.fromhex(conf["ik_out"]),
                            (ipaddress.ip_network(conf["vip"] + "/32"),),
                            (ipaddress.ip_network(conf["peer_vip"] + "/32"),),
                            udp_encapsulation=True)
    plane = UserspaceDataPlane(tun, sock, (conf["peer_addr"], 4500))
    plane.install_child_sa(sa)
    plane.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", tun.name, flush=True)
    await stop.wait()
    print(json.dumps(vars(plane.global_counters)), flush=True)
    plane.close()
    tun.close()


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
