"""A small IKEv2 responder for tests, built from the same codec and crypto as the session.

It behaves like a strongSwan 5.9 road-warrior gateway (see /work/shared/NOTES.md): what it
sends in IKE_SA_INIT and IKE_AUTH, how it narrows traffic selectors, its CP replies. Every
knob a test needs (cookies, INVALID_KE, fragments, REDIRECT, faked NAT-D, refused rekeys)
is a field of GatewayConfig. `Pair` connects an IkeSession to it in memory with a fake
clock and optional fault injection, like aioquic's client/server tests.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import struct
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from cryptography.hazmat.primitives import serialization

from ike import auth, certificates, config_payload, keys, proposals, traffic_selectors
from ike.constants import AuthMethod, CertEncoding, ExchangeType, NotifyType, ProtocolId
from ike.intermediate import IntermediateAuthChain, intermediate_auth_input
from ike.keyexchange import KeyExchangeError, make_key_exchange, respond as ke_respond
from ike.nat_detection import nat_detection_hash
from ike.payloads import (AUTH, CERT, CERTREQ, CP, EAP, FLAG_INITIATOR, FLAG_RESPONSE, KE, SA,
                          Delete, EncryptedFragment, Header, IDi, IDr, Message,
                          Nonce, Notify, ParseError, TSi, TSr, decode_payloads,
                          encode_payloads)
from ike.protection import FragmentReassembler, SkProtector
from ike.redirect import encode_redirect
from ike.session import IkeSession
from ike.settings import AuthSettings, Settings
from ike.transforms import IntegrityError, make_prf

NOW = 1_780_272_000.0  # 2026-06-01, inside the test PKI's validity


@dataclass
class GatewayConfig:
    address: str = "192.0.2.1"
    identity: str = "vpn.example.org"
    psk: bytes = field(default=b"correct horse battery staple", repr=False)
    client_auth: str = "psk"  # psk | pubkey | eap | pubkey+eap (RFC 4739)
    certificate: Any = None  # gateway certificate (pubkey/eap clients)
    private_key: Any = field(default=None, repr=False)
    intermediates: tuple = ()
    eap_server: Optional[Callable[[], Any]] = None  # factory of tests/ike/eap_server.EapServer
    ike_proposals: str = proposals.DEFAULT_IKE
    esp_proposals: str = proposals.DEFAULT_ESP
    pool4: Optional[str] = "10.10.0.2"
    pool6: Optional[str] = None
    dns: tuple = ("10.10.0.1",)
    domains: tuple = ("corp.example.org",)
    extra_cp: tuple = ()  # (attribute type, value) pairs added to every CFG_REPLY
    local_ts: tuple = ("0.0.0.0/0", "::/0")  # what the gateway allows behind it
    narrow_tsi_to_vip: bool = True  # strongSwan puts the virtual IP into TSi
    require_cookie: bool = False
    fragmentation: bool = True
    fragment_size: int = 1280
    fake_nat: bool = False  # kernel-libipsec: a bogus NAT-D so both sides float
    redirect_init: Optional[str] = None
    redirect_auth: Optional[str] = None
    additional_addresses: tuple = ()  # ADDITIONAL_IP4/6_ADDRESS in the IKE_AUTH response
    send_certreq: bool = True
    refuse_child: Optional[NotifyType] = None  # IKE_AUTH without CHILD_SA, this notify instead
    answer_rekey_with: list = field(default_factory=list)  # notifies for our next rekeys
    reject_auth: bool = False
    multiple_auth: bool = True  # send MULTIPLE_AUTH_SUPPORTED, as strongSwan does
    invalid_ke: Optional[int] = None  # always answer INVALID_KE_PAYLOAD asking for this group
    own_psk: Optional[bytes] = field(default=None, repr=False)  # sign with another PSK
    auth_lifetime: Optional[int] = None  # RFC 4478 AUTH_LIFETIME (seconds) in IKE_AUTH
    keep_old_sas: bool = False  # a new IKE_SA_INIT leaves the IKE_SAs there are (reauth)
    extra_auth_notifies: tuple = ()  # (type, data) notifies added to the last IKE_AUTH response
    eap_only: bool = False  # RFC 5998: no certificate AUTH before EAP (strongSwan local.auth = eap)
    mobike: bool = True  # MOBIKE_SUPPORTED in IKE_AUTH; UPDATE_SA_ADDRESSES answered (RFC 4555)
    mobike_refusal: Optional[NotifyType] = None  # answer UPDATE_SA_ADDRESSES with this error
    echo_cookie2: bool = True


@dataclass
class GatewayChild:
    spi_in: bytes  # the gateway's inbound SPI (the client's spi_out)
    spi_out: bytes
    proposal: Any
    keymat: Any = field(repr=False)
    we_initiated: bool = False
    local_ts: tuple = ()
    remote_ts: tuple = ()

    @property
    def encr_key_in(self) -> bytes:  # what the gateway decrypts with
        return self.keymat.encr_r if self.we_initiated else self.keymat.encr_i

    @property
    def encr_key_out(self) -> bytes:
        return self.keymat.encr_i if self.we_initiated else self.keymat.encr_r


@dataclass
class GatewaySa:
    spi_i: bytes
    spi_r: bytes
    we_are_initiator: bool = False
    proposal: Any = None
    keys: Any = field(default=None, repr=False)
    protector: Any = field(default=None, repr=False)
    reassembler: Any = field(default=None, repr=False)
    prf: Any = None
    next_peer_id: int = 0
    last_response_id: int = -1
    last_response: list = field(default_factory=list, repr=False)
    next_request_id: int = 0
    fragmentation: bool = False
    alive: bool = True

    def flags(self, response: bool) -> int:
        return (FLAG_INITIATOR if self.we_are_initiator else 0) | (FLAG_RESPONSE if response else 0)


class Responder:
    """The gateway. Feed it with receive(data, addr); collect self.outbox."""

    def __init__(self, config: Optional[GatewayConfig] = None, random_bytes=os.urandom):
        self.config = config or GatewayConfig()
        self.random = random_bytes
        self.ike_offers = proposals.parse_ike_proposals(self.config.ike_proposals)
        self.esp_offers = proposals.parse_esp_proposals(self.config.esp_proposals)
        self.outbox: list[tuple[bytes, tuple]] = []
        self.sa: Optional[GatewaySa] = None
        self.sas: list[GatewaySa] = []
        self.children: dict[bytes, GatewayChild] = {}
        self.received: list[tuple[int, list]] = []  # (exchange, payloads) of every request
        self.log: list[str] = []
        self.peer: tuple = ()
        self.pending: Optional[tuple] = None  # (sa, message id, handler) of our request
        self.established = False
        self.eap = None
        self.eap_done = False
        self.msk = b""
        self.intauth = IntermediateAuthChain()
        self._addke: list[int] = []
        self._cookie_secret = self.random(16)
        self.responses: list = []  # payloads of every response to our requests
        self.queue: list = []  # requests to send once the outstanding one is answered
        self._init_request = b""
        self.answered_rekeys: dict = {}  # old spi_in -> (ni, nr, new child), for collisions
        self.answered_ike_rekey = None
        self.authenticated_once = False
        self._init_response = b""
        self._auth_mid = 1
        self.ni = self.nr = b""

    # ------------------------------------------------------------------ plumbing

    def receive(self, data: bytes, addr: tuple) -> None:
        """Like a real gateway, drop what does not parse or authenticate."""
        try:
            self._receive(data, addr)
        except (ParseError, IntegrityError, KeyExchangeError) as exc:
            self.log.append(f"dropped: {exc}")

    def _receive(self, data: bytes, addr: tuple) -> None:
        if data[:4] == b"\x00\x00\x00\x00":
            data = data[4:]
        self.peer = addr
        message = Message.decode(data)
        header = message.header
        if header.exchange == ExchangeType.IKE_SA_INIT and not header.is_response:
            return self._on_init(message, data, addr)
        sa = next((s for s in self.sas if s.spi_i == header.spi_i and s.spi_r == header.spi_r),
                  None)
        if sa is None:
            self.log.append("unknown SPI")
            return
        if header.is_response:
            return self._on_response(sa, message, data)
        if header.message_id == sa.last_response_id:
            self.log.append(f"retransmitted request {header.message_id}")
            fragment = message.get(EncryptedFragment)
            if fragment is None or fragment.number == 1:
                self._emit(sa.last_response)
            return
        if header.message_id != sa.next_peer_id:
            self.log.append(f"received message ID {header.message_id}, expected {sa.next_peer_id}")
            return
        payloads, chain = self._open(sa, message, data)
        if payloads is None:
            return
        self.received.append((header.exchange, payloads))
        handler = {
            ExchangeType.IKE_INTERMEDIATE: self._on_intermediate,
            ExchangeType.IKE_AUTH: self._on_auth,
            ExchangeType.CREATE_CHILD_SA: self._on_create_child_sa,
            ExchangeType.INFORMATIONAL: self._on_informational,
        }[header.exchange]
        response = handler(sa, header, payloads, chain)
        if response is not None:
            self._respond(sa, header, response)

    def _open(self, sa: GatewaySa, message: Message, data: bytes):
        if message.get(EncryptedFragment) is not None:
            if sa.reassembler is None:
                sa.reassembler = FragmentReassembler(sa.protector)
            chain = sa.reassembler.add_chain(data, message)
            if chain is None:
                return None, None
        else:
            chain = sa.protector.open_chain(data, message)
        return decode_payloads(*chain), chain

    def _seal(self, sa: GatewaySa, header: Header, payloads: list) -> list[bytes]:
        whole = sa.protector.seal(header, payloads)
        if sa.fragmentation and len(whole) + 28 > self.config.fragment_size:
            return sa.protector.seal_fragments(header, payloads, self.config.fragment_size,
                                               ip_version=4, non_esp_marker=False)
        return [whole]

    def _emit(self, datagrams: list[bytes]) -> None:
        for d in datagrams:
            self.outbox.append((d, self.peer))

    def _respond(self, sa: GatewaySa, request: Header, payloads: list) -> None:
        header = Header(sa.spi_i, sa.spi_r, 0, request.exchange, sa.flags(True),
                        request.message_id)
        datagrams = self._seal(sa, header, payloads)
        sa.last_response_id = request.message_id
        sa.last_response = datagrams
        sa.next_peer_id = request.message_id + 1
        self._emit(datagrams)

    def request(self, exchange: int, payloads: list, on_response=None,
                sa: Optional[GatewaySa] = None) -> list[bytes]:
        """Send a gateway-initiated request; returns its datagrams (tests may replay them)."""
        sa = sa or self.sa
        header = Header(sa.spi_i, sa.spi_r, 0, exchange, sa.flags(False), sa.next_request_id)
        self.pending = (sa, sa.next_request_id, on_response or (lambda payloads: None))
        sa.next_request_id += 1
        datagrams = self._seal(sa, header, payloads)
        self._emit(datagrams)
        return datagrams

    def _on_response(self, sa, message, data) -> None:
        if self.pending is None or self.pending[0] is not sa \
                or self.pending[1] != message.header.message_id:
            self.log.append("unexpected response")
            return
        payloads, _ = self._open(sa, message, data)
        if payloads is None:
            return
        handler = self.pending[2]
        self.pending = None
        self.responses.append(payloads)
        handler(payloads)
        if self.queue and self.pending is None:
            self.queue.pop(0)()

    # ------------------------------------------------------------------ IKE_SA_INIT

    def _cookie_for(self, ni: bytes, spi_i: bytes, addr) -> bytes:
        return b"\x00" + make_prf(5)(self._cookie_secret, ni + spi_i + str(addr).encode())[:16]

    def _answer_init(self, header: Header, payloads: list) -> None:
        message = Message(Header(header.spi_i, bytes(8), 0, ExchangeType.IKE_SA_INIT,
                                 FLAG_RESPONSE, 0), payloads)
        self.outbox.append((message.encode(), self.peer))

    def _on_init(self, message: Message, data: bytes, addr) -> None:
        c = self.config
        header = message.header
        payloads = message.payloads
        self.received.append((header.exchange, payloads))
        sa_payload, ke, nonce = message.get(SA), message.get(KE), message.get(Nonce)
        if self.sa is not None and self.sa.spi_i == header.spi_i and self._init_request == data:
            self.outbox.append((self._init_response, addr))  # retransmission
            return
        if c.require_cookie:
            cookie = message.notifies(NotifyType.COOKIE)
            expected = self._cookie_for(nonce.data, header.spi_i, addr)
            if not cookie or payloads[0] is not cookie[0] or cookie[0].data != expected:
                return self._answer_init(header, [Notify(NotifyType.COOKIE, data=expected)])
        if c.redirect_init:
            return self._answer_init(header, [Notify(NotifyType.REDIRECT,
                                                     data=encode_redirect(c.redirect_init,
                                                                          nonce.data))])
        try:
            selection = proposals.select_ike(self.ike_offers, sa_payload, ke.group)
        except proposals.ProposalError:
            return self._answer_init(header, [Notify(NotifyType.NO_PROPOSAL_CHOSEN)])
        chosen = selection.proposal
        if c.invalid_ke:
            return self._answer_init(header, [Notify(NotifyType.INVALID_KE_PAYLOAD,
                                                     data=struct.pack("!H", c.invalid_ke))])
        if chosen.ke_group != ke.group:
            return self._answer_init(header, [Notify(NotifyType.INVALID_KE_PAYLOAD,
                                                     data=struct.pack("!H", chosen.ke_group))])
        own = make_key_exchange(chosen.ke_group)
        shared = own.shared_secret(ke.data)
        sa = GatewaySa(header.spi_i, self.random(8), proposal=chosen, next_peer_id=1)
        self.sa = sa
        if c.keep_old_sas:  # a client reauthenticating make-before-break (RFC 7296 §2.8.3)
            self.sas.append(sa)
        else:
            self.sas = [sa]
            self.children = {}
        self.established = False
        self.eap = None
        self.eap_done = False
        self.msk = b""
        self.authenticated_once = False
        self.intauth = IntermediateAuthChain()
        self.ni, self.nr = nonce.data, self.random(32)
        sa.prf = make_prf(chosen.prf_id)
        self._set_keys(sa, keys.derive_ike_sa_keys(chosen, shared, self.ni, self.nr,
                                                   sa.spi_i, sa.spi_r))
        sa.fragmentation = c.fragmentation and bool(
            message.notifies(NotifyType.IKEV2_FRAGMENTATION_SUPPORTED))
        self._addke = list(chosen.additional_ke_groups)
        source = nat_detection_hash(sa.spi_i, sa.spi_r, c.address, 500)
        if c.fake_nat:
            source = self.random(20)
        response = [SA([chosen.to_payload(selection.number)]), KE(chosen.ke_group,
                                                                  own.public_bytes()),
                    Nonce(self.nr),
                    Notify(NotifyType.NAT_DETECTION_SOURCE_IP, data=source),
                    Notify(NotifyType.NAT_DETECTION_DESTINATION_IP,
                           data=nat_detection_hash(sa.spi_i, sa.spi_r, addr[0], addr[1]))]
        if c.send_certreq:
            anchors = [c.certificate] if c.certificate is not None else []
            response.append(CERTREQ(CertEncoding.X509_SIGNATURE,
                                    certificates.certreq_hashes(anchors)))
        if c.fragmentation:
            response.append(Notify(NotifyType.IKEV2_FRAGMENTATION_SUPPORTED))
        response.append(Notify(NotifyType.SIGNATURE_HASH_ALGORITHMS,
                               data=auth.encode_hash_algorithms()))
        if self._addke:
            response.append(Notify(NotifyType.INTERMEDIATE_EXCHANGE_SUPPORTED))
        response.append(Notify(NotifyType.CHILDLESS_IKEV2_SUPPORTED))
        if c.multiple_auth:
            response.append(Notify(NotifyType.MULTIPLE_AUTH_SUPPORTED))
        out = Message(Header(sa.spi_i, sa.spi_r, 0, ExchangeType.IKE_SA_INIT, FLAG_RESPONSE, 0),
                      response).encode()
        self._init_request, self._init_response = data, out
        self.outbox.append((out, addr))

    def _set_keys(self, sa: GatewaySa, new_keys) -> None:
        sa.keys = new_keys
        sa.protector = SkProtector(sa.proposal, new_keys, sa.we_are_initiator)
        sa.reassembler = None

    # ------------------------------------------------------------------ IKE_INTERMEDIATE

    def _on_intermediate(self, sa, header, payloads, chain):
        ke = next((p for p in payloads if isinstance(p, KE)), None)
        if not self._addke or ke is None or ke.group != self._addke[0]:
            return [Notify(NotifyType.INVALID_SYNTAX)]
        group = self._addke.pop(0)
        public, shared = ke_respond(group, ke.data)
        response = [KE(group, public)]
        request_input = intermediate_auth_input(sa.spi_i, sa.spi_r, header.exchange,
                                                header.flags, header.message_id, *chain)
        response_input = intermediate_auth_input(sa.spi_i, sa.spi_r, header.exchange,
                                                 sa.flags(True), header.message_id,
                                                 *encode_payloads(response))
        self.intauth.add(sa.prf, sa.keys.sk_pi, sa.keys.sk_pr, request_input, response_input)
        self._respond(sa, header, response)  # under the old keys
        self._set_keys(sa, keys.update_for_additional_ke(sa.proposal, sa.keys, shared, self.ni,
                                                         self.nr, sa.spi_i, sa.spi_r))
        return None

    # ------------------------------------------------------------------ IKE_AUTH

    def _octets(self, sa, initiator: bool, id_payload, message_id) -> bytes:
        intauth = self.intauth.auth_data(self._auth_mid)
        if initiator:
            return auth.signed_octets(self._init_request, self.nr, sa.prf, sa.keys.sk_pi,
                                      id_payload) + intauth
        return auth.signed_octets(self._init_response, self.ni, sa.prf, sa.keys.sk_pr,
                                  id_payload) + intauth

    def _gateway_idr(self):
        return IDr(*certificates.identity_from_string(self.config.identity))

    def _on_auth(self, sa, header, payloads, chain):
        c = self.config
        get = lambda cls: next((p for p in payloads if isinstance(p, cls)), None)  # noqa: E731
        idi, client_auth = get(IDi), get(AUTH)
        if idi is not None:
            self.idi = idi
            if not self.authenticated_once:
                self._auth_mid = header.message_id
                self.first_auth_request = payloads
        if c.client_auth == "eap" or self.authenticated_once:
            return self._eap_round(sa, header, payloads, client_auth)
        if client_auth is None or c.reject_auth:
            return [Notify(NotifyType.AUTHENTICATION_FAILED)]
        octets = self._octets(sa, True, idi, header.message_id)
        if c.client_auth == "psk":
            try:
                auth.verify_shared_key_auth(client_auth, sa.prf, c.psk, octets)
            except auth.AuthenticationError:
                return [Notify(NotifyType.AUTHENTICATION_FAILED)]
            idr = self._gateway_idr()
            gateway_auth = [AUTH(AuthMethod.SHARED_KEY_MIC, auth.psk_auth_data(
                sa.prf, c.own_psk or c.psk, self._octets(sa, False, idr, header.message_id)))]
        else:
            cert = get(CERT)
            try:
                from cryptography import x509
                client_cert = x509.load_der_x509_certificate(cert.data)
                auth.verify_auth(client_auth, octets, client_cert)
            except Exception:
                return [Notify(NotifyType.AUTHENTICATION_FAILED)]
            idr, gateway_auth = self._signature_auth(sa, header)
            another = any(isinstance(p, Notify) and p.type == NotifyType.ANOTHER_AUTH_FOLLOWS
                          for p in payloads)
            if another and c.client_auth == "pubkey+eap":
                self.authenticated_once = True  # RFC 4739: EAP follows in a second round
                return [idr] + gateway_auth
        return [idr] + gateway_auth + self._finish_auth(sa, self.first_auth_request)

    def _signature_auth(self, sa, header):
        c = self.config
        idr = self._gateway_idr()
        octets = self._octets(sa, False, idr, header.message_id)
        method, data = auth.Signer(c.private_key).sign(octets, auth.SUPPORTED_HASH_ALGORITHMS)
        certs = [CERT(CertEncoding.X509_SIGNATURE,
                      x.public_bytes(serialization.Encoding.DER))
                 for x in (c.certificate, *c.intermediates)]
        return idr, certs + [AUTH(method, data)]

    def _eap_round(self, sa, header, payloads, client_auth):
        c = self.config
        eap = next((p for p in payloads if isinstance(p, EAP)), None)
        if self.eap is None:
            self.eap = c.eap_server()
            if self.authenticated_once:  # second round: the gateway proved itself already
                return [EAP(self.eap.start())]
            if c.eap_only:
                return [self._gateway_idr(), EAP(self.eap.start())]
            idr, gateway_auth = self._signature_auth(sa, header)
            return [idr] + gateway_auth + [EAP(self.eap.start())]
        if eap is not None and not self.eap_done:
            answer = self.eap.process(eap.data)
            if self.eap.done:
                self.eap_done = True
                if not self.eap.succeeded:
                    return [EAP(answer), Notify(NotifyType.AUTHENTICATION_FAILED)]
                self.msk = self.eap.msk
            return [EAP(answer)]
        if client_auth is None or not self.eap_done:
            return [Notify(NotifyType.AUTHENTICATION_FAILED)]
        key_i = self.msk or sa.keys.sk_pi
        octets = self._octets(sa, True, self.idi, header.message_id)
        if c.reject_auth or not hmac.compare_digest(
                auth.psk_auth_data(sa.prf, key_i, octets), client_auth.data):
            return [Notify(NotifyType.AUTHENTICATION_FAILED)]
        idr = self._gateway_idr()
        key_r = self.msk or sa.keys.sk_pr
        gateway_auth = AUTH(AuthMethod.SHARED_KEY_MIC, auth.psk_auth_data(
            sa.prf, key_r, self._octets(sa, False, idr, header.message_id)))
        return [gateway_auth] + self._finish_auth(sa, self.first_auth_request)

    def _finish_auth(self, sa, request: list) -> list:
        """The rest of the last IKE_AUTH response: CP, CHILD_SA, notifies."""
        c = self.config
        self.established = True
        get = lambda cls: next((p for p in request if isinstance(p, cls)), None)  # noqa: E731
        out: list = []
        cp = get(CP)
        if cp is not None:
            out.append(config_payload.build_reply(cp, ip4=c.pool4, ip6=c.pool6, dns=c.dns,
                                                  domains=c.domains, extra=c.extra_cp))
        if c.refuse_child is not None:
            out.append(Notify(c.refuse_child))
        else:
            out += self._new_child(get(SA), get(TSi), get(TSr), self.ni, self.nr, b"",
                                   with_ke=False, cp=cp)
        if c.mobike:
            out.append(Notify(NotifyType.MOBIKE_SUPPORTED))
        for address in c.additional_addresses:
            kind = NotifyType.ADDITIONAL_IP4_ADDRESS if ipaddress.ip_address(address).version == 4 \
                else NotifyType.ADDITIONAL_IP6_ADDRESS
            out.append(Notify(kind, data=ipaddress.ip_address(address).packed))
        if c.redirect_auth:
            out.append(Notify(NotifyType.REDIRECT, data=encode_redirect(c.redirect_auth)))
        if c.auth_lifetime is not None:  # as charon does when reauth_time is set
            out.append(Notify(NotifyType.AUTH_LIFETIME, data=c.auth_lifetime.to_bytes(4, "big")))
        out += [Notify(kind, data=data) for kind, data in c.extra_auth_notifies]
        return out

    def _narrowed(self, tsi, tsr, cp):
        c = self.config
        vips = []
        if c.narrow_tsi_to_vip and cp is not None:
            vips = [n for n in (c.pool4 and f"{c.pool4}/32", c.pool6 and f"{c.pool6}/128") if n]
        local = traffic_selectors.selectors_for(vips) if vips else tsi.selectors
        allowed_i = traffic_selectors.narrow(tsi.selectors, local)
        allowed_r = traffic_selectors.narrow(tsr.selectors,
                                             traffic_selectors.selectors_for(c.local_ts))
        return allowed_i, allowed_r

    def _new_child(self, sa_payload, tsi, tsr, ni, nr, shared, with_ke, cp=None,
                   child_spi=None):
        try:
            selection = proposals.select_esp(self.esp_offers, sa_payload, with_ke)
        except proposals.ProposalError:
            return [Notify(NotifyType.NO_PROPOSAL_CHOSEN)]
        ts_i, ts_r = self._narrowed(tsi, tsr, cp if cp is not None else self._last_cp)
        if cp is not None:
            self._last_cp = cp
        if not ts_i or not ts_r:
            return [Notify(NotifyType.TS_UNACCEPTABLE)]
        spi = child_spi or self._child_spi()
        keymat = keys.derive_child_sa_keymat(selection.proposal, self.sa.proposal.prf_id,
                                             self.sa.keys.sk_d, ni, nr, shared)
        child = GatewayChild(spi, selection.spi, selection.proposal, keymat, we_initiated=False,
                             local_ts=traffic_selectors.networks_of(ts_r),
                             remote_ts=traffic_selectors.networks_of(ts_i))
        self.children[spi] = child
        self.last_child = child
        return [SA([selection.proposal.to_payload(selection.number, spi, with_ke=with_ke)]),
                TSi(ts_i), TSr(ts_r)]

    _last_cp = None

    def _child_spi(self) -> bytes:
        while True:
            spi = self.random(4)
            if int.from_bytes(spi, "big") > 255:
                return spi

    # ------------------------------------------------------------------ CREATE_CHILD_SA

    def _on_create_child_sa(self, sa, header, payloads, chain):
        get = lambda cls: next((p for p in payloads if isinstance(p, cls)), None)  # noqa: E731
        if self.config.answer_rekey_with:
            notify = self.config.answer_rekey_with.pop(0)
            rekey = next((p for p in payloads if isinstance(p, Notify)
                          and p.type == NotifyType.REKEY_SA), None)
            spi = rekey.spi if rekey is not None else b""
            return [Notify(notify, ProtocolId.ESP if spi else 0, spi)]
        sa_payload, nonce, ke = get(SA), get(Nonce), get(KE)
        nr = self.random(32)
        if sa_payload.proposals[0].protocol == ProtocolId.IKE:
            return self._answer_ike_rekey(sa, sa_payload, nonce, ke, nr)
        shared, ke_out = b"", []
        if ke is not None:
            public, shared = ke_respond(ke.group, ke.data)
            ke_out = [KE(ke.group, public)]
        rekey = next((p for p in payloads if isinstance(p, Notify)
                      and p.type == NotifyType.REKEY_SA), None)
        self.last_rekey_nonces = (nonce.data, nr)
        out = self._new_child(sa_payload, get(TSi), get(TSr), nonce.data, nr, shared,
                              with_ke=ke is not None)
        if isinstance(out[0], Notify):
            return out
        if rekey is not None:
            self.rekeyed_from = rekey.spi
            old = next((c for c in self.children.values() if c.spi_out == rekey.spi), None)
            if old is not None:
                self.answered_rekeys[old.spi_in] = (nonce.data, nr, self.last_child)
        return [out[0], Nonce(nr), *ke_out, *out[1:]]

    def _answer_ike_rekey(self, sa, sa_payload, nonce, ke, nr):
        try:
            selection = proposals.select_ike(self.ike_offers, sa_payload, ke.group)
        except proposals.ProposalError:
            return [Notify(NotifyType.NO_PROPOSAL_CHOSEN)]
        public, shared = ke_respond(ke.group, ke.data)
        new = GatewaySa(selection.spi, self.random(8), proposal=selection.proposal,
                        fragmentation=sa.fragmentation)
        new.prf = make_prf(new.proposal.prf_id)
        self._set_keys(new, keys.derive_ike_sa_keys(new.proposal, shared, nonce.data, nr,
                                                    new.spi_i, new.spi_r,
                                                    old_sk_d=sa.keys.sk_d,
                                                    old_prf=sa.proposal.prf_id))
        self.sas.append(new)
        self.sa = new
        self.answered_ike_rekey = (nonce.data, nr, new)
        return [SA([selection.proposal.to_payload(selection.number, new.spi_r)]), Nonce(nr),
                KE(ke.group, public)]

    # ------------------------------------------------------------------ INFORMATIONAL

    def _on_informational(self, sa, header, payloads, chain):
        out: list = []
        if any(isinstance(p, Notify) and p.type == NotifyType.UPDATE_SA_ADDRESSES
               for p in payloads):
            out += self._answer_update_sa_addresses(sa, payloads)
        for p in payloads:
            if isinstance(p, Delete) and p.protocol == ProtocolId.IKE:
                sa.alive = False
                self.sas.remove(sa)
                self._respond(sa, header, [])
                if sa is self.sa:
                    self.sa = self.sas[-1] if self.sas else None
                    if self.sa is None:
                        self.established = False
                return None
            if isinstance(p, Delete) and p.protocol == ProtocolId.ESP:
                ours = []
                for spi in p.spis:
                    child = next((c for c in self.children.values() if c.spi_out == spi), None)
                    if child is not None:
                        del self.children[child.spi_in]
                        ours.append(child.spi_in)
                if ours:
                    out.append(Delete(ProtocolId.ESP, ours))
        return out

    def _answer_update_sa_addresses(self, sa, payloads) -> list:
        """RFC 4555 §3.5: move to the request's source address (self.peer), answer with NAT-D
        for the new pair and the COOKIE2 echoed (§3.8)."""
        c = self.config
        if not c.mobike:
            return []
        out: list = []
        if c.mobike_refusal is not None:
            out.append(Notify(c.mobike_refusal))
        else:
            self.moved_to = self.peer
            port = 4500 if self.peer[1] != 500 else 500
            source = nat_detection_hash(sa.spi_i, sa.spi_r, c.address, port)
            if c.fake_nat:
                source = bytes(20)
            out += [Notify(NotifyType.NAT_DETECTION_SOURCE_IP, data=source),
                    Notify(NotifyType.NAT_DETECTION_DESTINATION_IP, data=nat_detection_hash(
                        sa.spi_i, sa.spi_r, self.peer[0], self.peer[1]))]
        cookie2 = next((p for p in payloads if isinstance(p, Notify)
                        and p.type == NotifyType.COOKIE2), None)
        if cookie2 is not None and c.echo_cookie2:
            out.append(Notify(NotifyType.COOKIE2, data=cookie2.data))
        return out

    # ------------------------------------------------------------------ gateway-initiated

    def send_dpd(self) -> list[bytes]:
        return self.request(ExchangeType.INFORMATIONAL, [])

    def delete_ike(self) -> list[bytes]:
        return self.request(ExchangeType.INFORMATIONAL, [Delete(ProtocolId.IKE, [])])

    def delete_child(self, child: GatewayChild) -> list[bytes]:
        def done(payloads):
            self.children.pop(child.spi_in, None)
        return self.request(ExchangeType.INFORMATIONAL, [Delete(ProtocolId.ESP, [child.spi_in])],
                            done)

    def rekey_child(self, child: GatewayChild, pfs_group: int = 0) -> dict:
        """CREATE_CHILD_SA(REKEY_SA) from the gateway; returns a dict filled on response."""
        result: dict = {}
        spi = self._child_spi()
        ni = self.random(32)
        offers = proposals.parse_esp_proposals(self.config.esp_proposals)
        payload_ke = []
        own = None
        if pfs_group:
            own = make_key_exchange(pfs_group)
            payload_ke = [KE(pfs_group, own.public_bytes())]
        payloads = [Notify(NotifyType.REKEY_SA, ProtocolId.ESP, child.spi_in),
                    SA([p.to_payload(n, spi, with_ke=bool(pfs_group))
                        for n, p in enumerate(offers, 1)]),
                    Nonce(ni), *payload_ke,
                    TSi(traffic_selectors.selectors_for(child.local_ts)),
                    TSr(traffic_selectors.selectors_for(child.remote_ts))]
        result["nonce_i"] = ni

        def done(response):
            get = lambda cls: next((p for p in response if isinstance(p, cls)), None)  # noqa
            answer_sa, nr = get(SA), get(Nonce)
            if answer_sa is None:
                result["refused"] = [p for p in response if isinstance(p, Notify)]
                return
            chosen = proposals.choose_esp(offers, answer_sa, with_ke=bool(pfs_group))
            shared = own.shared_secret(get(KE).data) if own is not None else b""
            keymat = keys.derive_child_sa_keymat(chosen, self.sa.proposal.prf_id,
                                                 self.sa.keys.sk_d, ni, nr.data, shared)
            new = GatewayChild(spi, answer_sa.proposals[0].spi, chosen, keymat,
                               we_initiated=True, local_ts=child.local_ts,
                               remote_ts=child.remote_ts)
            self.children[spi] = new
            result["child"] = new
            result["nonce_r"] = nr.data
            # RFC 7296 §2.8.1: on a collision the SA created with the lowest nonce is
            # redundant; its creator deletes it, the winner's creator deletes the old one.
            theirs = self.answered_rekeys.pop(child.spi_in, None)
            if theirs is not None and min(ni, nr.data) < min(theirs[0], theirs[1]):
                result["redundant"] = True
                self.queue.append(lambda: self.delete_child(new))
            else:
                self.queue.append(lambda: self.delete_child(child))
        result["datagrams"] = self.request(ExchangeType.CREATE_CHILD_SA, payloads, done)
        return result

    def rekey_ike(self) -> dict:
        result: dict = {}
        old = self.sa
        spi = self.random(8)
        ni = self.random(32)
        group = old.proposal.ke_group
        own = make_key_exchange(group)
        payloads = [SA([p.to_payload(n, spi) for n, p in enumerate(self.ike_offers, 1)]),
                    Nonce(ni), KE(group, own.public_bytes())]

        def done(response):
            get = lambda cls: next((p for p in response if isinstance(p, cls)), None)  # noqa
            answer_sa, nr, ke = get(SA), get(Nonce), get(KE)
            if answer_sa is None:
                result["refused"] = [p for p in response if isinstance(p, Notify)]
                return
            chosen = proposals.choose_ike(self.ike_offers, answer_sa)
            new = GatewaySa(spi, answer_sa.proposals[0].spi, we_are_initiator=True,
                            proposal=chosen, fragmentation=old.fragmentation)
            new.prf = make_prf(chosen.prf_id)
            self._set_keys(new, keys.derive_ike_sa_keys(
                chosen, own.shared_secret(ke.data), ni, nr.data, new.spi_i, new.spi_r,
                old_sk_d=old.keys.sk_d, old_prf=old.proposal.prf_id))
            self.sas.append(new)
            result["sa"] = new
            result["old"] = old
            doomed = old
            theirs, self.answered_ike_rekey = self.answered_ike_rekey, None
            if theirs is not None and min(ni, nr.data) < min(theirs[0], theirs[1]):
                # §2.8.2 collision lost: ours is redundant; the client deletes the old one
                result["redundant"] = True
                doomed = new
                self.sa = theirs[2]
            else:
                self.sa = new

            def retire(_payloads):
                if doomed in self.sas:
                    self.sas.remove(doomed)
            # §2.18: the rekey initiator deletes the old (or redundant) IKE_SA over itself
            self.queue.append(lambda: self.request(
                ExchangeType.INFORMATIONAL, [Delete(ProtocolId.IKE, [])], retire, sa=doomed))
        result["datagrams"] = self.request(ExchangeType.CREATE_CHILD_SA, payloads, done, sa=old)
        return result

    def informational(self, payloads: list) -> list[bytes]:
        return self.request(ExchangeType.INFORMATIONAL, payloads)


# --------------------------------------------------------------------------- in-memory pair

CLIENT = "192.0.2.100"


def client_settings(**overrides) -> Settings:
    values = dict(remote_address="192.0.2.1", local_address=CLIENT, local_id="carol@example.org",
                  remote_id=None, random_bytes=os.urandom,
                  auth=AuthSettings(psk=GatewayConfig.psk))
    values.update(overrides)
    return Settings(**values)


class Pair:
    """An IkeSession and a Responder wired together, with a fake clock.

    Filters (`to_gateway`, `to_client`) see each datagram and return the list of datagrams
    to deliver instead (drop: [], duplicate: [d, d], corrupt: [bad]).
    """

    def __init__(self, settings: Optional[Settings] = None,
                 gateway: Optional[GatewayConfig] = None, now: float = NOW,
                 client_nat: Optional[tuple] = None):
        self.now = now
        self.settings = settings or client_settings()
        self.session = IkeSession(self.settings, now)
        self.session.raise_internal_errors = True
        self.gateway = Responder(gateway)
        self.events: list = []
        self.to_gateway: Optional[Callable[[bytes], list]] = None
        self.to_client: Optional[Callable[[bytes], list]] = None
        self.client_nat = client_nat  # the address the gateway sees us as
        self.sent_to_gateway: list[tuple[bytes, tuple]] = []
        self.sent_to_client: list[bytes] = []

    def connect(self) -> list:
        self.session.connect(self.now)
        events = self.run()
        refusal = self.session.init_refusal
        if refusal is not None and not events:
            # An IKE_SA_INIT refusal is only a hint (RFC 7296 §2.21.1): let the session's wait
            # for a valid answer run out, as a real clock would.
            deadline = max(self.session.outstanding_request.deadline, refusal.not_before)
            events += self.advance(deadline - self.now)
        return events

    def _client_address(self, port: int) -> tuple:
        if self.client_nat:
            return (self.client_nat[0], self.client_nat[1] + (0 if port == 500 else 1))
        return (self.settings.local_address, port)

    def run(self, rounds: int = 100) -> list:
        """Shuttle datagrams until both sides are quiet; return the new events."""
        new_events = []
        for _ in range(rounds):
            moved = False
            for data, addr in self.session.datagrams_to_send(self.now):
                moved = True
                self.sent_to_gateway.append((data, addr))
                for d in (self.to_gateway(data) if self.to_gateway else [data]):
                    self.gateway.receive(d, self._client_address(addr[1]))
            outbox, self.gateway.outbox = self.gateway.outbox, []
            for data, addr in outbox:
                moved = True
                source = (self.gateway.config.address, 4500 if addr[1] != 500 and
                          addr[1] != self.settings.local_port else 500)
                if self.session.udp_encapsulation:
                    source = (self.gateway.config.address, 4500)
                self.sent_to_client.append(data)
                for d in (self.to_client(data) if self.to_client else [data]):
                    self.session.receive_datagram(d, source, self.now)
            while (event := self.session.next_event()) is not None:
                new_events.append(event)
            if not moved:
                break
        self.events.extend(new_events)
        return new_events

    def advance(self, seconds: float) -> list:
        """Move the clock forward, firing the session's timers on the way."""
        target = self.now + seconds
        new_events = []
        while True:
            timer = self.session.get_timer()
            if timer is None or timer > target:
                break
            self.now = max(self.now, timer)
            self.session.handle_timer(self.now)
            new_events += self.run()
        self.now = target
        return new_events + self.run()

    def deliver_to_client(self, datagrams: list[bytes]) -> list:
        for d in datagrams:
            self.session.receive_datagram(d, (self.gateway.config.address, 4500
                                              if self.session.udp_encapsulation else 500), self.now)
        return self.run()
