"""Rekeying (RFC 7296 §1.3.2, §1.3.3, §2.8, §2.8.1, §2.18, §2.25): CHILD_SAs and the IKE_SA,
started by us or by the gateway, make-before-break, collisions and refusals."""

from ike.constants import ExchangeType, KeId, NotifyType
from ike.events import ChildSaDeleted, ChildSaEstablished, ChildSaRekeyed
from ike.payloads import KE, Notify, TSi
from ike.session import State

from .responder import GatewayConfig, Pair, client_settings


def _kinds(events):
    return [type(e).__name__ for e in events]


def _established():
    pair = Pair()
    child = pair.connect()[-1]
    assert isinstance(child, ChildSaEstablished)
    return pair, child


def test_child_rekey_is_make_before_break():
    pair, old = _established()
    pair.session.rekey_child(old.child_id)
    events = pair.advance(0)
    assert _kinds(events) == ["ChildSaEstablished", "ChildSaRekeyed", "ChildSaDeleted"]
    new, rekeyed, deleted = events
    assert new.child_id == old.child_id and new.spi_in != old.spi_in
    assert (rekeyed.old_spi_in, rekeyed.new_spi_in) == (old.spi_in, new.spi_in)
    assert (deleted.spi_in, deleted.spi_out) == (old.spi_in, old.spi_out)
    assert list(pair.gateway.children) == [new.spi_out]
    gateway_child = pair.gateway.children[new.spi_out]
    assert gateway_child.encr_key_in == new.encr_key_out
    assert gateway_child.encr_key_out == new.encr_key_in
    assert new.encr_key_in != old.encr_key_in
    # the request carried REKEY_SA with the old inbound SPI
    exchange, payloads = pair.gateway.received[2]
    assert exchange == ExchangeType.CREATE_CHILD_SA
    rekey = next(p for p in payloads if isinstance(p, Notify) and p.type == NotifyType.REKEY_SA)
    assert rekey.spi == old.spi_in
    # like strongSwan, the rekey proposes the narrowed selectors of the SA it replaces
    tsi = next(p for p in payloads if isinstance(p, TSi))
    assert [n for s in tsi.selectors for n in s.to_network_range()] == list(old.local_ts)
    assert new.local_ts == old.local_ts and new.remote_ts == old.remote_ts


def test_child_rekey_fires_on_the_soft_lifetime():
    pair, old = _established()
    assert pair.advance(old.lifetime_soft - 1) == []
    events = pair.advance(2)
    assert _kinds(events) == ["ChildSaEstablished", "ChildSaRekeyed", "ChildSaDeleted"]


def test_child_rekey_with_pfs_sends_ke_and_mixes_the_shared_secret():
    pair = Pair(client_settings(esp_proposals="aes128gcm16-ecp256"),
                GatewayConfig(esp_proposals="aes128gcm16-ecp256"))
    old = pair.connect()[-1]
    pair.session.rekey_child(old.child_id)
    new = pair.advance(0)[0]
    _, payloads = pair.gateway.received[2]
    assert next(p for p in payloads if isinstance(p, KE)).group == KeId.ECP_256
    assert pair.gateway.children[new.spi_out].encr_key_in == new.encr_key_out


def test_temporary_failure_postpones_the_rekey():
    pair, old = _established()
    pair.gateway.config.answer_rekey_with.append(NotifyType.TEMPORARY_FAILURE)
    pair.session.rekey_child(old.child_id)
    assert pair.advance(0) == []
    events = pair.advance(25)
    assert _kinds(events) == ["ChildSaEstablished", "ChildSaRekeyed", "ChildSaDeleted"]


def test_child_sa_not_found_sets_up_a_fresh_child_with_the_same_id():
    pair, old = _established()
    pair.gateway.config.answer_rekey_with.append(NotifyType.CHILD_SA_NOT_FOUND)
    pair.session.rekey_child(old.child_id)
    events = pair.advance(0)
    assert _kinds(events) == ["ChildSaDeleted", "ChildSaEstablished"]
    assert events[1].child_id == old.child_id
    assert pair.session.state is State.ESTABLISHED


def test_gateway_rekeys_a_child_sa_then_deletes_the_old_one():
    pair, old = _established()
    gateway_old = pair.gateway.children[old.spi_out]
    result = pair.gateway.rekey_child(gateway_old)
    events = pair.run()
    assert _kinds(events) == ["ChildSaEstablished", "ChildSaRekeyed", "ChildSaDeleted"]
    new = events[0]
    assert new.child_id == old.child_id
    assert result["child"].encr_key_in == new.encr_key_out
    assert result["child"].encr_key_out == new.encr_key_in
    assert events[2].reason == "rekeyed by the gateway"


def test_gateway_rekey_with_pfs():
    pair = Pair(client_settings(esp_proposals="aes128gcm16-ecp256"),
                GatewayConfig(esp_proposals="aes128gcm16-ecp256"))
    old = pair.connect()[-1]
    result = pair.gateway.rekey_child(pair.gateway.children[old.spi_out], KeId.ECP_256)
    events = pair.run()
    assert result["child"].encr_key_in == events[0].encr_key_out


def test_simultaneous_child_rekeys_keep_exactly_one_new_sa():
    outcomes = set()
    for _ in range(40):  # nonces are random: both outcomes of §2.8.1 get exercised
        pair, old = _established()
        pair.session.rekey_child(old.child_id)
        pair.session.handle_timer(pair.now)  # our request is on its way ...
        result = pair.gateway.rekey_child(pair.gateway.children[old.spi_out])  # ... and theirs
        events = pair.run()
        outcomes.add(bool(result.get("redundant")))
        established = [e for e in events if isinstance(e, ChildSaEstablished)]
        deleted = [e for e in events if isinstance(e, ChildSaDeleted)]
        assert len(established) == 2 and len(deleted) == 2
        assert any(isinstance(e, ChildSaRekeyed) for e in events)
        survivors = list(pair.session.child_sas)
        assert len(survivors) == 1 and len(pair.gateway.children) == 1
        survivor = pair.session.child_sas[survivors[0]]
        assert pair.gateway.children[survivor.spi_out].spi_out == survivor.spi_in
        assert survivor.child_id == old.child_id
        if outcomes == {True, False}:
            break
    assert outcomes == {True, False}


def test_ike_rekey_moves_children_to_the_new_ike_sa():
    pair, child = _established()
    old_spi_i = pair.session.ike_sa.spi_i
    pair.session.rekey_ike()
    events = pair.advance(0)
    assert _kinds(events) == ["IkeSaRekeyed"]
    rekeyed = events[0]
    assert rekeyed.old_spi_i == old_spi_i and rekeyed.new_spi_i != old_spi_i
    assert [sa.spi_i for sa in pair.gateway.sas] == [rekeyed.new_spi_i]
    # the new IKE_SA works: a CHILD rekey over it succeeds, and message IDs restarted
    pair.session.rekey_child(child.child_id)
    assert _kinds(pair.advance(0)) == ["ChildSaEstablished", "ChildSaRekeyed", "ChildSaDeleted"]
    assert pair.session.ike_sa.next_request_id == 2


def test_ike_rekey_fires_on_its_timer():
    pair, _ = _established()
    events = pair.advance(14400)
    assert "IkeSaRekeyed" in _kinds(events)


def test_gateway_rekeys_the_ike_sa_and_we_become_its_responder():
    pair, child = _established()
    result = pair.gateway.rekey_ike()
    events = pair.run()
    assert _kinds(events) == ["IkeSaRekeyed"]
    assert not pair.session.ike_sa.we_are_initiator
    assert pair.session.retired_ike_sas == ()  # the gateway deleted the old one
    assert result["sa"].spi_r == pair.session.ike_sa.spi_r
    # requests in both directions still work over the new IKE_SA
    pair.session.rekey_child(child.child_id)
    assert _kinds(pair.advance(0)) == ["ChildSaEstablished", "ChildSaRekeyed", "ChildSaDeleted"]
    pair.gateway.send_dpd()
    pair.run()
    assert pair.gateway.responses[-1] == []


def test_simultaneous_ike_rekeys_keep_exactly_one_new_ike_sa():
    outcomes = set()
    for _ in range(40):  # random nonces: both outcomes of §2.8.2 get exercised
        pair, child = _established()
        old_spi = pair.session.ike_sa.spi_i
        pair.session.rekey_ike()
        pair.session.handle_timer(pair.now)
        result = pair.gateway.rekey_ike()
        events = pair.run()
        assert _kinds(events) == ["IkeSaRekeyed"]
        outcomes.add(bool(result.get("redundant")))
        ike = pair.session.ike_sa
        assert ike.spi_i != old_spi
        assert pair.session.retired_ike_sas == ()
        assert [(sa.spi_i, sa.spi_r) for sa in pair.gateway.sas] == [(ike.spi_i, ike.spi_r)]
        # and the survivor works
        pair.session.rekey_child(child.child_id)
        assert "ChildSaRekeyed" in _kinds(pair.advance(0))
        if outcomes == {True, False}:
            break
    assert outcomes == {True, False}


def _gateway_create_child(pair, payloads):
    pair.gateway.request(ExchangeType.CREATE_CHILD_SA, payloads)
    pair.run()
    return pair.gateway.responses[-1]


def _child_offer(pair, child, rekey_spi=None, ke=None):
    from ike import proposals, traffic_selectors
    from ike.constants import ProtocolId
    from ike.payloads import SA, TSi, TSr, Nonce
    offers = proposals.parse_esp_proposals(pair.gateway.config.esp_proposals)
    payloads = [SA([p.to_payload(n, b"\x00\x01\x02\x03", with_ke=ke is not None)
                    for n, p in enumerate(offers, 1)]), Nonce(b"n" * 32)]
    if rekey_spi is not None:
        payloads.insert(0, Notify(NotifyType.REKEY_SA, ProtocolId.ESP, rekey_spi))
    if ke is not None:
        payloads.append(ke)
    payloads += [TSi(traffic_selectors.selectors_for(child.remote_ts)),
                 TSr(traffic_selectors.selectors_for(child.local_ts))]
    return payloads


def test_gateway_may_create_a_child_sa_after_a_hard_expiry():
    # strongSwan 5.9: "closing expired CHILD_SA", then "CHILD_SA recreate after hard expire"
    # with a CREATE_CHILD_SA without REKEY_SA
    pair, child = _established()
    pair.gateway.delete_child(pair.gateway.children[child.spi_out])
    assert _kinds(pair.run()) == ["ChildSaDeleted"]
    answer = _gateway_create_child(pair, _child_offer(pair, child))
    assert [type(p).__name__ for p in answer] == ["SA", "Nonce", "TSi", "TSr"]
    new = pair.events[-1]
    assert isinstance(new, ChildSaEstablished) and new.child_id != child.child_id
    assert new.local_ts == child.local_ts and new.remote_ts == child.remote_ts
    assert new.spi_out == b"\x00\x01\x02\x03"


def test_gateway_child_sa_outside_our_selectors_is_refused():
    import ipaddress
    pair = Pair(client_settings(remote_ts=(ipaddress.ip_network("192.168.0.0/16"),)))
    child = pair.connect()[-1]
    offer = _Ts(child.local_ts, (ipaddress.ip_network("10.0.0.0/8"),))
    answer = _gateway_create_child(pair, _child_offer(pair, offer))
    assert [n.type for n in answer] == [NotifyType.TS_UNACCEPTABLE]


class _Ts:
    def __init__(self, local_ts, remote_ts):
        self.local_ts, self.remote_ts = local_ts, remote_ts


def test_gateway_rekey_of_an_unknown_child_sa():
    pair, child = _established()
    answer = _gateway_create_child(pair, _child_offer(pair, child, rekey_spi=b"\x09\x09\x09\x09"))
    assert [n.type for n in answer] == [NotifyType.CHILD_SA_NOT_FOUND]


def test_gateway_rekey_with_a_pfs_group_we_do_not_accept():
    from ike.keyexchange import make_key_exchange
    pair = Pair(client_settings(esp_proposals="aes128gcm16-ecp256"),
                GatewayConfig(esp_proposals="aes128gcm16-ecp256"))
    child = pair.connect()[-1]
    # the proposal names ecp256, which we accept, but the KE payload is ecp384 (§1.3: the
    # KE must match the proposed group, else INVALID_KE_PAYLOAD with the one we want)
    ke = KE(KeId.ECP_384, make_key_exchange(KeId.ECP_384).public_bytes())
    answer = _gateway_create_child(pair, _child_offer(pair, child, rekey_spi=child.spi_out,
                                                      ke=ke))
    assert [n.type for n in answer] == [NotifyType.INVALID_KE_PAYLOAD]
    assert answer[0].data == b"\x00\x13"
    # a proposal with another supported group is accepted with the gateway's KE: a client
    # takes the extra forward secrecy rather than losing the CHILD_SA
    pair.gateway.config.esp_proposals = "aes128gcm16-ecp384"
    answer = _gateway_create_child(pair, _child_offer(pair, child, rekey_spi=child.spi_out,
                                                      ke=ke))
    assert [type(p).__name__ for p in answer] == ["SA", "Nonce", "KE", "TSi", "TSr"]
    assert answer[2].group == KeId.ECP_384
    assert pair.events[-2].encr_key_in != child.encr_key_in  # ChildSaEstablished, Rekeyed


def test_gateway_child_rekey_while_our_ike_rekey_runs_is_postponed():
    pair, child = _established()
    pair.to_gateway = lambda d: []  # our IKE rekey request is outstanding
    pair.session.rekey_ike()
    pair.advance(0)
    pair.to_gateway = None
    answer = _gateway_create_child(pair, _child_offer(pair, child, rekey_spi=child.spi_out))
    assert [n.type for n in answer] == [NotifyType.TEMPORARY_FAILURE]


def test_ike_rekey_refused_is_retried_later():
    pair, _ = _established()
    pair.gateway.config.answer_rekey_with.append(NotifyType.TEMPORARY_FAILURE)
    pair.session.rekey_ike()
    assert pair.advance(0) == []
    assert _kinds(pair.advance(25)) == ["IkeSaRekeyed"]


def test_child_sa_expires_when_it_cannot_be_rekeyed():
    pair, child = _established()
    pair.gateway.config.answer_rekey_with.extend([NotifyType.NO_PROPOSAL_CHOSEN] * 100)
    events = pair.advance(child.lifetime_hard + 1)
    deleted = [e for e in events if isinstance(e, ChildSaDeleted)]
    assert deleted and deleted[0].reason == "hard lifetime expired"
    assert pair.gateway.children == {}  # we told the gateway


def test_ike_rekeys_keep_the_negotiated_algorithms():
    # Changing the PRF in a rekey is where strongSwan 5.9 (old PRF for prf+) and RFC 7296
    # §2.18 (new PRF) part ways: we keep the current proposal whenever the peer allows it.
    both = "aes128gcm16-prfsha256-x25519,aes256gcm16-prfsha384-x25519"
    pair = Pair(client_settings(ike_proposals="aes256gcm16-prfsha384-x25519," + both),
                GatewayConfig(ike_proposals=both))
    pair.connect()
    assert str(pair.session.ike_sa.proposal) == "aes128gcm16-prfsha256-x25519"
    pair.gateway.rekey_ike()
    pair.run()
    assert str(pair.session.ike_sa.proposal) == "aes128gcm16-prfsha256-x25519"
    pair.session.rekey_ike()
    assert _kinds(pair.advance(0)) == ["IkeSaRekeyed"]
    _, payloads = pair.gateway.received[-2]
    first = next(p for p in payloads if type(p).__name__ == "SA").proposals[0]
    assert [t.id for t in first.transforms][:2] == [20, 5]  # AES-GCM-16, PRF_HMAC_SHA2_256


def test_request_stranded_on_an_ike_sa_the_gateway_rekeyed_away_is_dropped():
    pair = Pair(client_settings(dpd_delay=30.0))
    pair.connect()
    pair.to_client = lambda d: []  # the answer to our liveness check is lost ...
    pair.advance(31)
    stranded = pair.session.outstanding_request
    assert stranded is not None
    pair.to_client = None
    pair.gateway.rekey_ike()  # ... and the gateway moves to a new IKE_SA, deleting the old
    events = pair.run()
    assert _kinds(events) == ["IkeSaRekeyed"]
    assert pair.session.outstanding_request is None  # it could never be answered any more
    assert pair.advance(600) == []  # no false "dead peer"
    assert pair.session.state.name == "ESTABLISHED"


def test_gateway_ike_rekey_during_our_child_rekey_is_postponed():
    pair, child = _established()
    pair.to_client = lambda d: []
    pair.session.rekey_child(child.child_id)
    pair.advance(0)
    pair.to_client = None
    result = pair.gateway.rekey_ike()
    pair.run()
    assert [n.type for n in result["refused"]] == [NotifyType.TEMPORARY_FAILURE]  # §2.25
