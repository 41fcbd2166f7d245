"""Repeated authentication (RFC 4478; RFC 7296 §2.8.3): the gateway's AUTH_LIFETIME, in
IKE_AUTH or in an INFORMATIONAL, and our own optional reauth_time make the session report
ReauthenticationRequested ahead of the deadline, with jitter. The session changes nothing
itself: its owner brings up a second IkeSession alongside (make-before-break) and then closes
this one, which the last test plays through against one gateway."""

from ike.constants import ExchangeType, NotifyType
from ike.events import (ChildSaEstablished, ConfigReceived, IkeSaEstablished,
                        ReauthenticationRequested)
from ike.payloads import Notify
from ike.session import IkeSession, State

from .responder import GatewayConfig, Pair, client_settings


def _kinds(events):
    return [type(e).__name__ for e in events]


def _fixed_random(fraction: bytes):
    """os.urandom, except that 4-byte draws (jitter, and our one CHILD_SA's SPI) return
    `fraction`: jitter is span * fraction / 2**32. Only for tests without CHILD_SA rekeys."""
    import os

    return lambda n: fraction if n == 4 else os.urandom(n)


LITTLE = b"\x00\x00\x10\x00"  # jitter ~ 0 (a valid SPI: above 255)
MOST = b"\xff\xff\xff\x00"  # jitter ~ the whole span
HALF = b"\x80\x00\x00\x00"


def _established(gateway=None, **settings):
    pair = Pair(client_settings(**settings), gateway)
    events = pair.connect()
    assert isinstance(events[-1], ChildSaEstablished)
    return pair


def _reauth_requests(events):
    return [e for e in events if isinstance(e, ReauthenticationRequested)]


def test_auth_lifetime_in_ike_auth_is_reported_before_it_runs_out():
    pair = _established(GatewayConfig(auth_lifetime=1000))
    start = pair.now
    # 10 % margin, jitter of up to 10 % more: reported within [800 s, 900 s]
    assert pair.advance(799.9) == []
    events = pair.advance(100.2)
    [request] = _reauth_requests(events)
    assert request.requested_by_gateway
    assert request.deadline == start + 1000
    # nothing else happened: the IKE_SA and its CHILD_SA stay until the owner closes it
    assert _kinds(events) == ["ReauthenticationRequested"]
    assert pair.session.state is State.ESTABLISHED
    assert len(pair.session.child_sas) == 1
    # reported once, not again and again
    assert _reauth_requests(pair.advance(50)) == []


def test_jitter_spreads_the_reauthentication_over_the_margin():
    times = []
    for fraction in (LITTLE, MOST):
        pair = _established(GatewayConfig(auth_lifetime=1000),
                            random_bytes=_fixed_random(fraction))
        start = pair.now
        # in 10-second steps until the request shows up
        while not _reauth_requests(pair.advance(10)):
            assert pair.now - start < 1000
        times.append(pair.now - start)
    no_jitter, most_jitter = times
    assert 890 < no_jitter <= 900  # lifetime - 10 % - (almost) nothing
    assert 800 < most_jitter <= 810  # lifetime - 10 % - (almost) another 10 %


def test_auth_lifetime_in_an_informational_reschedules():
    pair = _established(GatewayConfig(auth_lifetime=3600))
    pair.deliver_to_client(pair.gateway.informational(
        [Notify(NotifyType.AUTH_LIFETIME, data=(100).to_bytes(4, "big"))]))
    assert pair.gateway.responses[-1] == []  # answered, nothing else to say
    start = pair.now
    [request] = _reauth_requests(pair.advance(91))
    assert request.deadline == start + 100 and request.requested_by_gateway
    # a later AUTH_LIFETIME (e.g. the gateway's policy changed) asks again
    pair.deliver_to_client(pair.gateway.informational(
        [Notify(NotifyType.AUTH_LIFETIME, data=(50).to_bytes(4, "big"))]))
    assert len(_reauth_requests(pair.advance(46))) == 1


def test_ike_rekey_keeps_the_reauthentication_schedule():
    """Rekeying renews keys, not authentication (§2.8.3): the deadline stays."""
    pair = _established(GatewayConfig(auth_lifetime=1000))
    start = pair.now
    pair.session.rekey_ike()
    assert "IkeSaRekeyed" in _kinds(pair.advance(0))
    [request] = _reauth_requests(pair.advance(901))
    assert request.deadline == start + 1000


def test_our_reauth_time_is_off_by_default():
    pair = _established(dpd_delay=0)
    assert client_settings().reauth_time == 0
    assert _reauth_requests(pair.advance(20000)) == []


def test_our_reauth_time_with_rand_time():
    pair = _established(reauth_time=600.0, reauth_rand_time=60.0,
                        random_bytes=_fixed_random(HALF))
    start = pair.now
    assert pair.advance(569) == []
    [request] = _reauth_requests(pair.advance(2))
    assert not request.requested_by_gateway
    assert request.deadline == start + 660  # reauth_time plus swanctl's 10 % over_time


def test_the_earlier_deadline_wins_between_ours_and_the_gateways():
    pair = _established(GatewayConfig(auth_lifetime=5000), reauth_time=1000.0)
    [request] = _reauth_requests(pair.advance(1001))
    assert not request.requested_by_gateway
    pair = _established(GatewayConfig(auth_lifetime=500), reauth_time=1000.0)
    [request] = _reauth_requests(pair.advance(501))
    assert request.requested_by_gateway


def test_a_malformed_auth_lifetime_is_ignored():
    pair = _established()
    pair.deliver_to_client(pair.gateway.informational(
        [Notify(NotifyType.AUTH_LIFETIME, data=b"\x00\x01")]))
    assert pair.session.state is State.ESTABLISHED
    assert _reauth_requests(pair.advance(5000)) == []


def test_make_before_break_with_a_second_session():
    """What the engine does on ReauthenticationRequested: a new IKE_SA and CHILD_SA from
    scratch next to the old ones (no INITIAL_CONTACT: it would tell the gateway to drop the
    old IKE_SA at once, RFC 7296 §2.4), then DELETE of the old IKE_SA."""
    gateway = GatewayConfig(auth_lifetime=100, keep_old_sas=True)
    old = _established(gateway)
    old_child = old.events[-1]
    [request] = _reauth_requests(old.advance(91))

    settings = client_settings(initial_contact=False)
    new = Pair(settings, now=old.now)
    new.gateway = old.gateway  # the same gateway holds both IKE_SAs
    events = new.connect()
    assert _kinds(events) == ["IkeSaEstablished", "ConfigReceived", "ChildSaEstablished"]
    assert new.now < request.deadline
    init, auth = [(x, p) for x, p in new.gateway.received[-2:]]
    assert init[0] == ExchangeType.IKE_SA_INIT and auth[0] == ExchangeType.IKE_AUTH
    assert not any(isinstance(p, Notify) and p.type == NotifyType.INITIAL_CONTACT
                   for p in auth[1])
    # both IKE_SAs and both CHILD_SAs exist on the gateway at this moment
    assert len(new.gateway.sas) == 2
    new_child = events[-1]
    assert {old_child.spi_out, new_child.spi_out} <= {c.spi_in for c in
                                                      new.gateway.children.values()}
    # the same identity gets the same lease (strongSwan's pools do this too)
    first_config = next(e for e in old.events if isinstance(e, ConfigReceived))
    assert events[1].addresses == first_config.addresses
    assert isinstance(events[0], IkeSaEstablished)
    assert events[0].spi_i != old.session.ike_sa.spi_i

    # one socket for both: the owner hands each datagram to the session whose SPIs it bears
    probe = new.gateway.send_dpd()  # an INFORMATIONAL on the new IKE_SA
    assert new.session.owns(probe[0]) and not old.session.owns(probe[0])
    assert not new.session.owns(b"\x00\x00\x00\x00" + b"short")
    new.deliver_to_client(probe)

    old.session.close()
    closing = old.advance(0)
    assert _kinds(closing) == ["ChildSaDeleted", "IkeSaDeleted"]
    assert old.session.state is State.CLOSED
    assert [sa.spi_i for sa in new.gateway.sas] == [events[0].spi_i]
    assert new.session.state is State.ESTABLISHED
    # the new IKE_SA learnt the gateway's AUTH_LIFETIME afresh
    assert len(_reauth_requests(new.advance(91))) == 1


def test_a_session_that_is_never_established_never_asks():
    session = IkeSession(client_settings(reauth_time=10.0), 0.0)
    session.connect(0.0)
    session.close()
    assert _reauth_requests(iter(lambda: session.next_event(), None)) == []


def test_the_session_tells_when_it_rekeys_and_reauthenticates():
    # What `cygnet status` shows as "rekey in … s, reauthentication in … s".
    pair = _established(reauth_time=600.0, reauth_rand_time=60.0, ike_rekey_time=1000.0,
                        ike_rand_time=100.0, random_bytes=_fixed_random(HALF))
    rekey_at, reauth_at = pair.session.ike_sa_deadlines()
    assert rekey_at == pair.now + 950 and reauth_at == pair.now + 570
    assert _established(dpd_delay=0).session.ike_sa_deadlines()[1] is None  # reauth off
