"""IKE_SA_INIT and IKE_AUTH (RFC 7296 §1.2, §2.6, §2.15, §2.23, §3.15) against the in-memory
test responder: what we send, what we accept, and the events the engine receives."""

import ipaddress

import pytest

from ike.constants import CfgType, ConfigAttr, ExchangeType, KeId, NotifyType
from ike.events import (AuthenticationFailed, ChildSaEstablished, ConfigReceived,
                        IkeSaDeleted, IkeSaEstablished, ProposalMismatch)
from ike.nat_detection import nat_detection_hash
from ike.payloads import AUTH, CP, KE, SA, IDi, Message, Nonce, Notify, TSi, TSr
from ike.session import IkeSession, State
from ike.settings import AuthSettings

from .responder import CLIENT, GatewayConfig, Pair, client_settings


def _kinds(events):
    return [type(e) for e in events]


def _first(payloads, cls):
    return next(p for p in payloads if isinstance(p, cls))


def _notify_types(payloads):
    return [p.type for p in payloads if isinstance(p, Notify)]


def test_psk_establishment_reports_ike_sa_config_and_child_sa_in_order():
    pair = Pair()
    events = pair.connect()
    assert _kinds(events) == [IkeSaEstablished, ConfigReceived, ChildSaEstablished]
    assert pair.session.state is State.ESTABLISHED
    established, config, child = events
    assert established.peer_identity == "vpn.example.org"
    assert established.remote_addr == ("192.0.2.1", 500)
    assert not established.nat_detected
    assert config.addresses == (ipaddress.ip_interface("10.10.0.2/32"),)
    assert config.dns_servers == (ipaddress.ip_address("10.10.0.1"),)
    assert config.domains == ("corp.example.org",)
    # the gateway narrowed TSi to our virtual IP and kept TSr
    assert child.local_ts == (ipaddress.ip_network("10.10.0.2/32"),)
    assert child.remote_ts == (ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0"))
    assert not child.udp_encapsulation
    assert child.lifetime_soft <= 3600 and child.lifetime_hard == 3960


def test_child_sa_keys_are_the_mirror_image_of_the_gateways():
    pair = Pair()
    child = pair.connect()[-1]
    gateway_child = pair.gateway.children[child.spi_out]
    assert gateway_child.spi_out == child.spi_in
    assert gateway_child.encr_key_in == child.encr_key_out
    assert gateway_child.encr_key_out == child.encr_key_in
    assert child.encr_key_in != child.encr_key_out
    assert len(child.encr_key_in) == 36  # AES-256-GCM key + 4-byte salt
    assert "encr_key_in" not in repr(child) and child.encr_key_in.hex() not in repr(child)


def test_ike_sa_init_request_carries_what_strongswan_expects():
    pair = Pair()
    pair.connect()
    exchange, payloads = pair.gateway.received[0]
    assert exchange == ExchangeType.IKE_SA_INIT
    assert [type(p) for p in payloads[:3]] == [SA, KE, Nonce]
    notifies = _notify_types(payloads)
    for wanted in (NotifyType.NAT_DETECTION_SOURCE_IP, NotifyType.NAT_DETECTION_DESTINATION_IP,
                   NotifyType.IKEV2_FRAGMENTATION_SUPPORTED,
                   NotifyType.SIGNATURE_HASH_ALGORITHMS, NotifyType.REDIRECT_SUPPORTED):
        assert wanted in notifies
    spi_i = Message.decode(pair.sent_to_gateway[0][0]).header.spi_i
    source = next(p for p in payloads if isinstance(p, Notify)
                  and p.type == NotifyType.NAT_DETECTION_SOURCE_IP)
    assert source.data == nat_detection_hash(spi_i, bytes(8), CLIENT, 500)
    assert _first(payloads, KE).group == KeId.CURVE25519


def test_ike_auth_request_carries_identity_cp_child_sa_and_selectors():
    pair = Pair(client_settings(request_ip6=True, request_dns6=True))
    pair.connect()
    exchange, payloads = pair.gateway.received[1]
    assert exchange == ExchangeType.IKE_AUTH
    assert _first(payloads, IDi).data == b"carol@example.org"
    assert NotifyType.INITIAL_CONTACT in _notify_types(payloads)
    assert NotifyType.ESP_TFC_PADDING_NOT_SUPPORTED in _notify_types(payloads)
    cp = _first(payloads, CP)
    assert cp.cfg_type == CfgType.REQUEST
    assert {a.type for a in cp.attributes} == {
        ConfigAttr.INTERNAL_IP4_ADDRESS, ConfigAttr.INTERNAL_IP6_ADDRESS,
        ConfigAttr.INTERNAL_IP4_DNS, ConfigAttr.INTERNAL_IP6_DNS, ConfigAttr.INTERNAL_DNS_DOMAIN}
    sa = _first(payloads, SA)
    assert all(len(p.spi) == 4 for p in sa.proposals)
    assert all(t.type != 4 for p in sa.proposals for t in p.transforms)  # no KE in IKE_AUTH
    assert [s.to_network_range() for s in _first(payloads, TSi).selectors] == [
        (ipaddress.ip_network("0.0.0.0/0"),), (ipaddress.ip_network("::/0"),)]
    assert len(_first(payloads, TSr).selectors) == 2
    assert _first(payloads, AUTH).method == 2  # SHARED_KEY_MIC


def test_ipv6_virtual_address_keeps_its_prefix():
    pair = Pair(client_settings(request_ip6=True, request_dns6=True),
                GatewayConfig(pool6="fd00::2", dns=("10.10.0.1", "fd00::1")))
    config = next(e for e in pair.connect() if isinstance(e, ConfigReceived))
    assert ipaddress.ip_interface("fd00::2/64") in config.addresses
    assert ipaddress.ip_address("fd00::1") in config.dns_servers


def test_wrong_psk_is_reported_in_plain_words():
    pair = Pair(client_settings(auth=AuthSettings(psk=b"wrong")))
    events = pair.connect()
    assert _kinds(events) == [AuthenticationFailed, IkeSaDeleted]
    assert events[0].reason == "the gateway rejected our credentials (wrong pre-shared key?)"
    assert pair.session.state is State.CLOSED
    assert pair.session.get_timer() is None


def test_gateway_with_a_different_psk_is_not_trusted():
    pair = Pair(gateway=GatewayConfig(own_psk=b"something else"))
    events = pair.connect()
    assert _kinds(events) == [AuthenticationFailed, IkeSaDeleted]
    assert "pre-shared key does not match" in events[0].reason


def test_gateway_identity_must_match_remote_id():
    pair = Pair(client_settings(remote_id="other.example.org"))
    events = pair.connect()
    assert isinstance(events[0], AuthenticationFailed)
    assert "vpn.example.org, not other.example.org" in events[0].reason


def test_cookie_is_echoed_first_and_exchange_completes():
    pair = Pair(gateway=GatewayConfig(require_cookie=True))
    events = pair.connect()
    assert _kinds(events) == [IkeSaEstablished, ConfigReceived, ChildSaEstablished]
    inits = [p for x, p in pair.gateway.received if x == ExchangeType.IKE_SA_INIT]
    assert len(inits) == 2
    assert isinstance(inits[1][0], Notify) and inits[1][0].type == NotifyType.COOKIE
    # §2.6: the retry keeps the same nonce and KE
    assert _first(inits[0], Nonce).data == _first(inits[1], Nonce).data


def test_invalid_ke_payload_retries_with_the_requested_group():
    pair = Pair(gateway=GatewayConfig(ike_proposals="aes128gcm16-prfsha256-ecp256"))
    events = pair.connect()
    assert isinstance(events[0], IkeSaEstablished)
    inits = [p for x, p in pair.gateway.received if x == ExchangeType.IKE_SA_INIT]
    assert [_first(p, KE).group for p in inits] == [KeId.CURVE25519, KeId.ECP_256]


def test_invalid_ke_payload_for_a_group_we_do_not_offer_is_a_mismatch():
    pair = Pair(client_settings(ike_proposals="aes128gcm16-prfsha256-x25519"),
                GatewayConfig(invalid_ke=KeId.ECP_384))
    events = pair.connect()
    assert _kinds(events) == [ProposalMismatch, IkeSaDeleted]
    assert "group 20" in events[0].reason


def test_invalid_ke_payload_loop_gives_up():
    pair = Pair(client_settings(ike_proposals="aes128gcm16-prfsha256-x25519-ecp256-ecp384"),
                GatewayConfig(invalid_ke=KeId.ECP_256))
    events = pair.connect()
    assert _kinds(events) == [ProposalMismatch, IkeSaDeleted]
    inits = [p for x, p in pair.gateway.received if x == ExchangeType.IKE_SA_INIT]
    assert len(inits) == 2  # one retry with ecp256, then the same request again is refused


def test_no_proposal_chosen_reports_what_we_offered():
    pair = Pair(client_settings(ike_proposals="aes128-sha256-modp2048"),
                GatewayConfig(ike_proposals="aes256gcm16-prfsha384-ecp384"))
    events = pair.connect()
    assert _kinds(events) == [ProposalMismatch, IkeSaDeleted]
    assert events[0].offered == ("aes128-sha256-prfsha256-modp2048",)
    assert "none of our IKE proposals" in events[0].reason


def test_nat_detected_floats_to_4500_and_encapsulates_esp():
    pair = Pair(client_nat=("203.0.113.7", 40000))
    events = pair.connect()
    established, child = events[0], events[-1]
    assert established.nat_detected
    assert established.remote_addr == ("192.0.2.1", 4500)
    assert child.udp_encapsulation
    ports = [addr[1] for _, addr in pair.sent_to_gateway]
    assert ports == [500, 4500]


def test_faked_nat_detection_of_libipsec_floats_both_sides():
    pair = Pair(gateway=GatewayConfig(fake_nat=True))
    events = pair.connect()
    assert events[0].nat_detected and events[-1].udp_encapsulation


def test_forced_encapsulation_fakes_our_source_hash():
    pair = Pair(client_settings(force_encapsulation=True))
    events = pair.connect()
    assert events[-1].udp_encapsulation
    assert [addr[1] for _, addr in pair.sent_to_gateway] == [500, 4500]


def test_narrowed_traffic_selectors_are_honoured():
    pair = Pair(gateway=GatewayConfig(local_ts=("10.0.0.0/8",)))
    child = pair.connect()[-1]
    assert child.remote_ts == (ipaddress.ip_network("10.0.0.0/8"),)


def test_child_sa_refused_in_ike_auth_deletes_the_ike_sa():
    pair = Pair(gateway=GatewayConfig(refuse_child=NotifyType.TS_UNACCEPTABLE))
    events = pair.connect()
    assert _kinds(events) == [IkeSaEstablished, ConfigReceived, IkeSaDeleted]
    assert events[-1].reason == "the gateway refused our traffic selectors"
    assert pair.gateway.sa is None  # our DELETE reached it


def test_esp_no_proposal_chosen_in_ike_auth_is_a_mismatch():
    pair = Pair(gateway=GatewayConfig(refuse_child=NotifyType.NO_PROPOSAL_CHOSEN))
    events = pair.connect()
    assert ProposalMismatch in _kinds(events)
    assert isinstance(events[-1], IkeSaDeleted)


def test_cbc_and_hmac_proposals_work_end_to_end():
    pair = Pair(client_settings(ike_proposals="aes128-sha256-ecp256",
                                esp_proposals="aes128-sha256"))
    child = pair.connect()[-1]
    assert isinstance(child, ChildSaEstablished)
    assert child.integ_id == 12 and child.encr_key_bits == 128
    assert len(child.integ_key_in) == 32


def test_close_deletes_the_ike_sa_and_reports_children_gone():
    pair = Pair()
    pair.connect()
    pair.session.close()
    events = pair.advance(0)
    assert [type(e).__name__ for e in events] == ["ChildSaDeleted", "IkeSaDeleted"]
    assert events[-1].reason == "closed"
    assert pair.gateway.sa is None


# --------------------------------------------------------------------------- certificates


@pytest.fixture(scope="module")
def pki():
    from .eap_server import Pki
    pki = Pki()
    gateway = pki.issue("vpn.example.org")
    client = pki.issue("carol@example.org", eku=None)
    impostor = pki.issue("other.example.org")
    return pki, gateway, client, impostor


def _cert_pair(pki, *, client_auth="pubkey", gateway_cert=None, identity="vpn.example.org",
               remote_id="vpn.example.org", eap=None, eap_method="mschapv2",
               eap_password="carol-password", **gateway_options):
    root, (gw_cert, gw_key), (cl_cert, cl_key), _ = pki
    if gateway_cert is not None:
        gw_cert, gw_key = gateway_cert
    auth = AuthSettings(method="pubkey" if client_auth == "pubkey+eap" else client_auth,
                        eap_after_certificate=client_auth == "pubkey+eap",
                        private_key=cl_key, certificate=cl_cert,
                        trust_anchors=(root.cert,), eap_method=eap_method,
                        eap_password=eap_password)
    gateway = GatewayConfig(client_auth=client_auth, certificate=gw_cert, private_key=gw_key,
                            identity=identity, eap_server=eap, **gateway_options)
    return Pair(client_settings(auth=auth, remote_id=remote_id), gateway)


def test_certificate_authentication_both_ways(pki):
    pair = _cert_pair(pki)
    events = pair.connect()
    assert _kinds(events) == [IkeSaEstablished, ConfigReceived, ChildSaEstablished]
    _, payloads = pair.gateway.received[1]
    kinds = {type(p).__name__ for p in payloads}
    assert {"CERT", "CERTREQ", "IDr", "AUTH"} <= kinds


def test_gateway_certificate_must_match_the_expected_identity(pki):
    _, _, _, impostor = pki
    pair = _cert_pair(pki, gateway_cert=impostor, identity="other.example.org")
    events = pair.connect()
    assert _kinds(events) == [AuthenticationFailed, IkeSaDeleted]
    assert events[0].reason.startswith("gateway certificate does not match vpn.example.org")


def test_gateway_claiming_an_identity_its_certificate_lacks_is_refused(pki):
    _, _, _, impostor = pki
    pair = _cert_pair(pki, gateway_cert=impostor, identity="vpn.example.org")
    events = pair.connect()
    assert isinstance(events[0], AuthenticationFailed)
    assert "does not match the gateway identity vpn.example.org" in events[0].reason


def test_untrusted_gateway_certificate_is_refused(pki):
    from .eap_server import Pki
    stranger = Pki("Stranger CA").issue("vpn.example.org")
    pair = _cert_pair(pki, gateway_cert=stranger)
    events = pair.connect()
    assert isinstance(events[0], AuthenticationFailed)
    assert "not signed by a trusted CA" in events[0].reason


def test_gateway_rejecting_our_certificate(pki):
    pair = _cert_pair(pki, reject_auth=True)
    events = pair.connect()
    assert isinstance(events[0], AuthenticationFailed)
    assert "rejected our certificate" in events[0].reason


def test_rsa_gateway_certificate_is_fragmented_like_strongswan(pki):
    root, *_ = pki
    rsa_gateway = root.issue("vpn.example.org", key_kind="rsa3072")
    pair = _cert_pair(pki, gateway_cert=rsa_gateway)
    events = pair.connect()
    assert isinstance(events[-1], ChildSaEstablished)


# --------------------------------------------------------------------------- EAP (§2.16)


def _eap_server(method="mschapv2"):
    from .eap_server import EapServer
    return lambda: EapServer(method, users={"carol@example.org": "carol-password"})


@pytest.mark.parametrize("method", ["mschapv2", "md5"])
def test_eap_authentication_with_msk_based_auth(pki, method):
    pair = _cert_pair(pki, client_auth="eap", eap=_eap_server(method), eap_method=method)
    events = pair.connect()
    assert _kinds(events) == [IkeSaEstablished, ConfigReceived, ChildSaEstablished]
    auth_requests = [p for x, p in pair.gateway.received if x == ExchangeType.IKE_AUTH]
    # strongSwan: EAP-Identity, MSCHAPv2 challenge, success request, EAP-Success, AUTH
    assert len(auth_requests) == (5 if method == "mschapv2" else 4)
    assert not any(isinstance(p, AUTH) for p in auth_requests[0])  # EAP: no AUTH at first


def test_eap_wrong_password(pki):
    pair = _cert_pair(pki, client_auth="eap", eap=_eap_server(), eap_password="nope")
    events = pair.connect()
    assert _kinds(events) == [AuthenticationFailed, IkeSaDeleted]
    assert events[0].reason == "wrong password (EAP-MSCHAPv2 error 691)"


def test_eap_gateway_with_untrusted_certificate_gets_no_password(pki):
    from .eap_server import Pki
    stranger = Pki("Stranger CA").issue("vpn.example.org")
    pair = _cert_pair(pki, client_auth="eap", eap=_eap_server(), gateway_cert=stranger)
    events = pair.connect()
    assert isinstance(events[0], AuthenticationFailed)
    assert len([x for x, _ in pair.gateway.received if x == ExchangeType.IKE_AUTH]) == 1


def test_eap_final_auth_rejected(pki):
    pair = _cert_pair(pki, client_auth="eap", eap=_eap_server(), reject_auth=True)
    events = pair.connect()
    assert isinstance(events[0], AuthenticationFailed)


def test_eap_tls_authentication(pki):
    from cryptography.x509.oid import ExtendedKeyUsageOID

    from ike.eap import TlsClientConfig
    from .eap_server import EapServer, TlsServerConfig
    root, (gw_cert, gw_key), _, _ = pki
    client_cert, client_key = root.issue("carol@example.org",
                                         eku=(ExtendedKeyUsageOID.CLIENT_AUTH,))
    server = lambda: EapServer("tls", tls=TlsServerConfig(gw_cert, gw_key,  # noqa: E731
                                                          client_ca=root.cert))
    pair = _cert_pair(pki, client_auth="eap", eap=server, eap_method="tls")
    pair.settings.auth.eap_tls = TlsClientConfig(client_cert, client_key,
                                                 trust_anchors=[root.cert],
                                                 server_identity="vpn.example.org")
    events = pair.connect()
    assert _kinds(events) == [IkeSaEstablished, ConfigReceived, ChildSaEstablished]
    assert len(pair.gateway.msk) == 64


# --------------------------------------------------------------------------- CP (§3.15)


def test_cfg_reply_parsing_keeps_prefixes_skips_malformed_values_and_keeps_the_rest():
    from ike.config_payload import parse_reply
    from ike.payloads import ConfigAttribute
    reply = CP(CfgType.REPLY, [
        ConfigAttribute(ConfigAttr.INTERNAL_IP4_ADDRESS, bytes([10, 9, 0, 7])),
        ConfigAttribute(ConfigAttr.INTERNAL_IP4_NETMASK, bytes([255, 255, 255, 0])),
        ConfigAttribute(ConfigAttr.INTERNAL_IP6_ADDRESS,
                        ipaddress.ip_address("fd00::7").packed + bytes([120])),
        ConfigAttribute(ConfigAttr.INTERNAL_IP4_DNS, b"\x01\x02\x03"),  # malformed: skipped
        ConfigAttribute(ConfigAttr.INTERNAL_IP6_DNS, ipaddress.ip_address("fd00::53").packed),
        ConfigAttribute(ConfigAttr.INTERNAL_DNS_DOMAIN, b"corp.example.org"),
        ConfigAttribute(ConfigAttr.INTERNAL_IP4_SUBNET, bytes([10, 1, 0, 0, 255, 255, 0, 0])),
        ConfigAttribute(ConfigAttr.INTERNAL_IP4_NETMASK, b"\xff\x00\xff\x00"),  # not a mask
    ])
    config = parse_reply(reply)
    assert config.addresses == (ipaddress.ip_interface("10.9.0.7/24"),
                                ipaddress.ip_interface("fd00::7/120"))
    assert config.dns_servers == (ipaddress.ip_address("fd00::53"),)
    assert config.domains == ("corp.example.org",)
    assert config.other == ((ConfigAttr.INTERNAL_IP4_SUBNET, bytes([10, 1, 0, 0, 255, 255, 0, 0])),)


def test_cfg_request_asks_only_for_what_the_settings_want():
    from ike.config_payload import build_request
    request = build_request(client_settings(request_ip4=False, request_dns4=False,
                                            request_domains=False))
    assert request.attributes == []
    request = build_request(client_settings())
    assert [a.type for a in request.attributes] == [
        ConfigAttr.INTERNAL_IP4_ADDRESS, ConfigAttr.INTERNAL_IP4_DNS,
        ConfigAttr.INTERNAL_DNS_DOMAIN]
    assert all(a.value == b"" for a in request.attributes)


# --------------------------------------------------------------------------- RFC 4739


def test_certificate_then_eap_in_two_authentication_rounds(pki):
    from ike.constants import NotifyType as N
    pair = _cert_pair(pki, client_auth="pubkey+eap", eap=_eap_server())
    pair.settings.auth.eap_identity = "carol@example.org"
    events = pair.connect()
    assert _kinds(events) == [IkeSaEstablished, ConfigReceived, ChildSaEstablished]
    init = pair.gateway.received[0][1]
    assert N.MULTIPLE_AUTH_SUPPORTED in _notify_types(init)
    rounds = [p for x, p in pair.gateway.received if x == ExchangeType.IKE_AUTH]
    assert N.ANOTHER_AUTH_FOLLOWS in _notify_types(rounds[0])
    assert any(isinstance(p, AUTH) and p.method != 2 for p in rounds[0])  # a signature
    assert [type(p).__name__ for p in rounds[1]] == ["IDi"]  # round 2 starts EAP
    assert isinstance(rounds[-1][0], AUTH) and rounds[-1][0].method == 2  # MSK-based
    assert len(pair.gateway.msk) == 64


def test_second_round_needs_the_gateways_multiple_auth_support(pki):
    pair = _cert_pair(pki, client_auth="pubkey+eap", eap=_eap_server(), multiple_auth=False)
    events = pair.connect()
    assert _kinds(events) == [AuthenticationFailed, IkeSaDeleted]
    assert "RFC 4739" in events[0].reason


def test_second_round_with_a_wrong_password(pki):
    pair = _cert_pair(pki, client_auth="pubkey+eap", eap=_eap_server(), eap_password="nope")
    events = pair.connect()
    assert _kinds(events) == [AuthenticationFailed, IkeSaDeleted]
    assert "wrong password" in events[0].reason


def test_unknown_authentication_method_is_a_configuration_error():
    with pytest.raises(ValueError, match="authentication method"):
        IkeSession(client_settings(auth=AuthSettings(method="telepathy")), 0.0)
    with pytest.raises(ValueError, match="fragment_size"):
        IkeSession(client_settings(fragment_size=200), 0.0)
