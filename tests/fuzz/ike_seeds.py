"""Real IKE exchanges from the in-memory gateway (tests/ike/responder.py), as fuzz seeds:
every datagram of a PSK connection, a DPD, a CHILD_SA rekey and an IKE_SA rekey, both ways."""

from __future__ import annotations

import functools


@functools.lru_cache(maxsize=1)
def recorded_exchange() -> tuple[list[bytes], list[bytes]]:
    """(datagrams the client sent, datagrams the gateway sent)."""
    from tests.ike.responder import Pair

    pair = Pair()
    pair.connect()
    pair.deliver_to_client(pair.gateway.send_dpd())
    child = next(iter(pair.gateway.children.values()))
    pair.gateway.rekey_child(child)
    pair.run()
    pair.gateway.rekey_ike()
    pair.run()
    return [d for d, _ in pair.sent_to_gateway], list(pair.sent_to_client)
