"""What the owner sees of a request that goes unanswered (RFC 7296 §2.1, §2.4): when it was
first sent (its retransmissions do not move that), and the DPD / retransmission log lines
(issue 16: without them a desynchronised cluster was invisible)."""

import logging

from .responder import Pair, client_settings


def test_unanswered_request_reports_the_first_transmission_and_logs_each_retransmission(caplog):
    pair = Pair(client_settings(dpd_delay=10.0))
    pair.connect()
    assert pair.session.unanswered_request() is None
    start = pair.now
    pair.to_client = lambda data: []          # the gateway's answers are lost from now on
    with caplog.at_level(logging.DEBUG, logger="ike"):
        pair.advance(10.0)                    # the DPD goes out
        first_sent, what = pair.session.unanswered_request()
        assert first_sent == start + 10.0 and what == "INFORMATIONAL request 2"
        pair.advance(12.0)                    # two retransmissions (4 s, 7.2 s later)
        assert pair.session.unanswered_request()[0] == start + 10.0
        messages = [r.getMessage() for r in caplog.records]
        assert any("liveness check (DPD), message ID 2" in m for m in messages)
        retransmissions = [m for m in messages if "retransmitting INFORMATIONAL request 2" in m]
        assert [m.rsplit("(", 1)[1] for m in retransmissions] == ["transmission 2)",
                                                                  "transmission 3)"]
        pair.to_client = None                 # answers arrive again
        pair.advance(30.0)
    assert pair.session.unanswered_request() is None
    assert any("liveness check answered" in r.getMessage() for r in caplog.records)


def test_a_replacement_ike_sa_asks_to_keep_the_addresses_it_holds():
    """§3.15.1: a CFG_REQUEST may name the address wanted; a new IKE_SA that replaces a lost
    one asks for the lease it holds, so TUN addresses and routes stay."""
    import ipaddress

    from ike.config_payload import build_request
    from ike.constants import ConfigAttr

    settings = client_settings(request_ip6=True, requested_addresses=(
        ipaddress.ip_interface("10.3.0.7/32"), ipaddress.ip_interface("fd00::7/64")))
    values = {a.type: a.value for a in build_request(settings).attributes}
    assert values[ConfigAttr.INTERNAL_IP4_ADDRESS] == bytes([10, 3, 0, 7])
    assert values[ConfigAttr.INTERNAL_IP6_ADDRESS] == ipaddress.ip_address("fd00::7").packed + b"\x40"
    assert values[ConfigAttr.INTERNAL_IP4_DNS] == b""
    plain = {a.type: a.value for a in build_request(client_settings()).attributes}
    assert plain[ConfigAttr.INTERNAL_IP4_ADDRESS] == b""


def test_close_abandoning_the_unanswered_request_sends_the_delete_under_the_next_id():
    """The old IKE_SA after a recovery: its request n is lost for good (the cluster node that
    took over expects n+1), so its DELETE goes out at once as n+1 instead of after n."""
    pair = Pair(client_settings(dpd_delay=10.0))
    pair.connect()
    pair.to_client = lambda data: []
    pair.advance(10.0)                        # DPD, message ID 2, unanswered
    pair.to_client = None
    pair.gateway.sa.last_response, pair.gateway.sa.last_response_id = [], -1
    pair.session.close(abandon_unanswered=True)
    events = pair.advance(0.0)
    assert [type(e).__name__ for e in events][-1] == "IkeSaDeleted"
    assert pair.gateway.sa is None or not pair.gateway.sa.alive   # it got our DELETE (ID 3)
