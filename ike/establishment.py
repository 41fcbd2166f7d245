"""Setting up the IKE_SA: IKE_SA_INIT (§1.2, COOKIE §2.6, INVALID_KE_PAYLOAD §1.2,
NAT detection §2.23, REDIRECT RFC 5685), IKE_INTERMEDIATE (RFC 9242/9370) and IKE_AUTH with
PSK, certificates or EAP (§2.15, §2.16), CP and the first CHILD_SA.

`Establishment` is a collaborator of IkeSession (session.py). It owns everything the
handshake needs and nothing after it: our KE and nonces, cookies and retries, the messages AUTH
signs, IntAuth, the identities and the EAP client. Changes of the IKE_SA's state go through the
session's `_transition`; datagrams through its request channel; the first CHILD_SA into its
CHILD_SA set.
"""

from __future__ import annotations

import logging
import struct
from typing import Optional

from .session_part import SessionPart
from . import config_payload, msgid_sync
from .constants import AuthMethod, CertEncoding, ExchangeType, HashAlgorithm, NotifyType
from .constant_time import bytes_equal
from .events import AuthenticationFailed, IkeSaEstablished, ProposalMismatch, Redirected
from .events import AUTH_GATEWAY, AUTH_LOCAL
from .intermediate import IntermediateAuthChain, intermediate_auth_input
from .nat_detection import nat_detection_hash
from .payloads import (AUTH, CERT, CERTREQ, CP, EAP, KE, SA, Header, IDi, IDr, Message, Nonce,
                       Notify, encode_payloads)
from .ike_sa import NONCE_SIZE, Input, ProtocolViolation, Reply, first, notify_name
from .gateway_identity import accepts_any, certificate_mismatch, idr_mismatch
from .redirect import RedirectError, decode_redirect
from .revocation_gate import RevocationGate
from . import eap_only
from .unauthenticated import InitRefusal
from . import session_crypto as crypto

log = logging.getLogger(__name__)

NAT_T_PORT = 4500
MAX_COOKIE_RETRIES = 3  # strongSwan: MAX_COOKIES
MAX_INVALID_KE_RETRIES = 3
# Errors in an IKE_AUTH response that concern only the first CHILD_SA (§1.2, §3.10.1)
CHILD_SA_ERRORS = frozenset(map(int, (
    NotifyType.NO_PROPOSAL_CHOSEN, NotifyType.TS_UNACCEPTABLE, NotifyType.FAILED_CP_REQUIRED,
    NotifyType.INTERNAL_ADDRESS_FAILURE, NotifyType.SINGLE_PAIR_REQUIRED)))
# §2.21.1: how long at least an unauthenticated IKE_SA_INIT refusal waits for a valid answer
MIN_REFUSAL_WAIT = 2.0
# strongSwan sends SIGNATURE_HASH_ALGORITHMS 2,3,4,5 (SHA-256/384/512, Identity)
OUR_HASH_ALGORITHMS = (HashAlgorithm.SHA2_256, HashAlgorithm.SHA2_384,
                       HashAlgorithm.SHA2_512, HashAlgorithm.IDENTITY)


class Establishment(SessionPart):
    """IkeSession's IKE_SA_INIT, IKE_INTERMEDIATE and IKE_AUTH exchanges."""

    def __init__(self, session) -> None:
        super().__init__(session)
        self._ke_group = crypto.ike_ke_groups(session._offered_ike)[0]
        self._ke = None
        self._nonce_i = b""
        self._nonce_r = b""
        self._cookie = b""
        self._cookie_retries = 0
        self._invalid_ke_retries = 0
        self._init_request = b""
        self._init_response = b""
        self._peer_hash_algorithms: tuple = ()
        self._additional_groups: list[int] = []
        self._intauth = IntermediateAuthChain()
        self._auth_message_id = 1
        self._idi = None
        self._gateway_authenticated = False
        self._eap = None
        self._msk = b""
        self._eap_done = False
        self._peer_multiple_auth = False
        self._peer_identity = ""
        self._nat_detected = False
        self._first_child_spi = b""
        self._peer_idr = None
        self.init_refusal: Optional[InitRefusal] = None  # §2.21.1 hint (unauthenticated.py)
        # the owner's revocation verdict on the gateway's chain (revocation_gate.py)
        self.revocation = RevocationGate(session.settings.auth.check_revocation)
        self._eap_only_gateway = False  # RFC 5998: the gateway skipped its AUTH (eap_only.py)
        self._last_auth_payloads: list = []

    def start(self, now: float) -> None:
        """IkeSession.connect(): the first IKE_SA_INIT request."""
        self._transition(Input.CONNECT)
        self._ke = crypto.make_ke(self._ke_group)
        self._nonce_i = self._random(NONCE_SIZE)
        self._send_ike_sa_init(now)

    # ------------------------------------------------------------------ what it uses of the session
    # (its narrow interface: the IKE_SA state machine, the current IKE_SA, the configuration and
    # the session's collaborators; nothing else)

    @property
    def _events(self):
        return self._s._events

    @property
    def _offered_ike(self):
        return self._s._offered_ike

    @property
    def _offered_ike_text(self):
        return self._s._offered_ike_text

    @property
    def _offered_esp(self):
        return self._s._offered_esp

    def _random(self, size: int) -> bytes:
        return self._s._random(size)

    def _send_request(self, ike, exchange, payloads, on_response, now, on_give_up=None) -> None:
        self._requests.send_request(ike, exchange, payloads, on_response, now, on_give_up)

    @property
    def settings(self):
        return self._s.settings

    @property
    def _ike(self):
        return self._s._ike

    def _transition(self, event: Input) -> None:
        self._s._transition(event)

    def _finish(self, reason: str, *events) -> None:
        self._s._finish(reason, *events)

    # ------------------------------------------------------------------ IKE_SA_INIT (§1.2)

    def _send_ike_sa_init(self, now: float) -> None:
        s = self.settings
        ike = self._ike
        payloads: list = []
        if self._cookie:
            payloads.append(Notify(NotifyType.COOKIE, data=self._cookie))  # must be first (§2.6)
        payloads += [
            SA(crypto.ike_proposal_payloads(self._offered_ike)),
            KE(self._ke_group, self._ke.public_bytes()),
            Nonce(self._nonce_i),
        ]
        source_hash = nat_detection_hash(ike.spi_i, bytes(8), s.local_address, s.local_port)
        if s.force_encapsulation:
            # strongSwan's trick: a bogus source hash makes both sides see a NAT and float
            source_hash = self._random(len(source_hash))
        payloads += [
            Notify(NotifyType.NAT_DETECTION_SOURCE_IP, data=source_hash),
            Notify(NotifyType.NAT_DETECTION_DESTINATION_IP, data=nat_detection_hash(
                ike.spi_i, bytes(8), self._requests.remote[0], self._requests.remote[1])),
        ]
        if s.fragmentation:
            payloads.append(Notify(NotifyType.IKEV2_FRAGMENTATION_SUPPORTED))
        payloads.append(Notify(NotifyType.SIGNATURE_HASH_ALGORITHMS,
                               data=b"".join(struct.pack("!H", h) for h in OUR_HASH_ALGORITHMS)))
        payloads.append(Notify(NotifyType.REDIRECT_SUPPORTED))
        if crypto.ike_offers_additional_ke(self._offered_ike):
            payloads.append(Notify(NotifyType.INTERMEDIATE_EXCHANGE_SUPPORTED))
        if s.auth.eap_after_certificate:
            payloads.append(Notify(NotifyType.MULTIPLE_AUTH_SUPPORTED))  # RFC 4739 §3.1
        ike.next_request_id = 0
        header = Header(ike.spi_i, bytes(8), 0, ExchangeType.IKE_SA_INIT,
                        ike.flags(response=False), 0)
        self._init_request = Message(header, payloads).encode()
        self._requests.send_unprotected(ike, ExchangeType.IKE_SA_INIT, self._init_request,
                                        self._on_ike_sa_init_response, now)

    def _on_ike_sa_init_response(self, reply: Reply, now: float) -> None:
        payloads, message = reply.payloads, reply.message
        notifies = [p for p in payloads if isinstance(p, Notify)]
        by_type = {int(n.type): n for n in notifies}
        if NotifyType.COOKIE in by_type:
            return self._retry_with_cookie(by_type[NotifyType.COOKIE], now)
        if NotifyType.INVALID_KE_PAYLOAD in by_type:
            return self._retry_with_group(by_type[NotifyType.INVALID_KE_PAYLOAD], now)
        if NotifyType.REDIRECT in by_type:
            return self._redirect_in_init(by_type[NotifyType.REDIRECT])
        if NotifyType.NO_PROPOSAL_CHOSEN in by_type:
            reason = "the gateway accepted none of our IKE proposals"
            return self._unauthenticated_refusal(reason, now, mismatch=True)
        errors = [n for n in notifies if int(n.type) < 16384]
        if errors:
            return self._unauthenticated_refusal(
                f"the gateway refused IKE_SA_INIT with {notify_name(errors[0])}", now)
        sa, ke, nonce = (first(payloads, SA), first(payloads, KE), first(payloads, Nonce))
        if sa is None or ke is None or nonce is None:
            raise ProtocolViolation("IKE_SA_INIT response lacks SA, KE or Nonce")
        header = message.header
        if not any(header.spi_r):
            raise ProtocolViolation("IKE_SA_INIT response with a zero responder SPI")
        try:
            chosen = crypto.choose_ike(self._offered_ike, sa)
        except crypto.ProposalError as exc:
            reason = f"the gateway chose an IKE proposal we did not offer: {exc}"
            return self._unauthenticated_refusal(reason, now, mismatch=True)
        if ke.group != self._ke_group or crypto.ike_chosen_group(chosen) != self._ke_group:
            return self._unauthenticated_refusal(
                "the gateway answered with a different key exchange group", now)
        shared = self._ke.shared_secret(ke.data)  # KeyExchangeError -> dropped by caller
        ike = self._ike
        ike.spi_r = header.spi_r
        self._nonce_r = nonce.data
        self._init_response = reply.raw  # AUTH signs it exactly as received (§2.15)
        ike.proposal = chosen
        ike.prf = crypto.make_prf_for(chosen)
        ike.set_keys(crypto.derive_ike_keys(chosen, shared, self._nonce_i, self._nonce_r,
                                            ike.spi_i, ike.spi_r), self._random)
        ike.fragmentation = (self.settings.fragmentation
                             and NotifyType.IKEV2_FRAGMENTATION_SUPPORTED in by_type)
        if NotifyType.SIGNATURE_HASH_ALGORITHMS in by_type:
            data = by_type[NotifyType.SIGNATURE_HASH_ALGORITHMS].data
            self._peer_hash_algorithms = tuple(
                struct.unpack("!H", data[i:i + 2])[0] for i in range(0, len(data) - 1, 2))
        self._peer_multiple_auth = NotifyType.MULTIPLE_AUTH_SUPPORTED in by_type
        self._detect_nat(by_type, reply.addr)
        self._additional_groups = crypto.ike_chosen_additional_groups(chosen)
        if self._additional_groups:
            self._send_intermediate(now)
        else:
            self._send_ike_auth(now)

    def _unauthenticated_refusal(self, reason: str, now: float, mismatch: bool = False) -> None:
        """RFC 7296 §2.21.1: an IKE_SA_INIT error answer is unauthenticated and may be spoofed.
        Note it as a hint and keep waiting for a valid answer until the request's next
        retransmission is due, at least MIN_REFUSAL_WAIT from now; only then fail with it
        (IkeSession.handle_timer). A valid answer meanwhile wins.
        Raising drops this datagram and keeps the request outstanding."""
        if self.init_refusal is None:
            events = (ProposalMismatch(self._offered_ike_text, reason, authenticated=False),) \
                if mismatch else ()
            self.init_refusal = InitRefusal(reason, events, now + MIN_REFUSAL_WAIT)
        raise ProtocolViolation(f"unauthenticated IKE_SA_INIT refusal ({reason}): "
                                "still waiting for a valid answer")

    def _retry_with_cookie(self, cookie: Notify, now: float) -> None:
        self._cookie_retries += 1
        if self._cookie_retries > MAX_COOKIE_RETRIES or not cookie.data:
            return self._finish("the gateway keeps asking for a cookie")
        self._cookie = cookie.data
        self._transition(Input.RETRY_INIT)
        self._send_ike_sa_init(now)

    def _retry_with_group(self, notify: Notify, now: float) -> None:
        """INVALID_KE_PAYLOAD (§1.2, §3.4): retry with the gateway's group if we offered it."""
        group = int.from_bytes(notify.data[:2], "big") if len(notify.data) >= 2 else 0
        self._invalid_ke_retries += 1
        if group not in crypto.ike_ke_groups(self._offered_ike):
            self._invalid_ke_retries -= 1  # a hint only: it did not make us retry
            reason = f"the gateway wants key exchange group {group}, which we do not offer"
            return self._unauthenticated_refusal(reason, now, mismatch=True)
        if group == self._ke_group or self._invalid_ke_retries > MAX_INVALID_KE_RETRIES:
            reason = f"the gateway keeps refusing our key exchange (it asks for group {group})"
            return self._unauthenticated_refusal(reason, now, mismatch=True)
        self._ke_group = group
        self._ke = crypto.make_ke(group)
        self._transition(Input.RETRY_INIT)
        self._send_ike_sa_init(now)

    def _redirect_in_init(self, notify: Notify) -> None:
        try:
            gateway, nonce = decode_redirect(notify.data)
        except RedirectError as exc:
            raise ProtocolViolation(str(exc)) from None
        if not bytes_equal(nonce, self._nonce_i):  # RFC 5685 §4.3: must echo Ni
            raise ProtocolViolation("REDIRECT without our nonce")
        self._finish(f"redirected to {gateway}", Redirected(gateway))

    def _detect_nat(self, by_type: dict, addr: tuple) -> None:
        """§2.23: compare the gateway's NAT-D hashes with what we see; float to 4500."""
        s = self.settings
        ike = self._ike
        source = by_type.get(NotifyType.NAT_DETECTION_SOURCE_IP)
        destination = by_type.get(NotifyType.NAT_DETECTION_DESTINATION_IP)
        if source is not None and destination is not None:
            seen_remote = nat_detection_hash(ike.spi_i, ike.spi_r, addr[0], addr[1])
            seen_local = nat_detection_hash(ike.spi_i, ike.spi_r, s.local_address, s.local_port)
            remote_natted = not bytes_equal(source.data, seen_remote)
            local_natted = not bytes_equal(destination.data, seen_local)
            self._nat_detected = remote_natted or local_natted
        supports_nat_t = source is not None and destination is not None
        if self._nat_detected or (s.force_encapsulation and supports_nat_t):
            self._requests.nat_t = True
            if self._requests.remote[1] == 500:
                self._requests.remote = (self._requests.remote[0], NAT_T_PORT)

    # ------------------------------------------------------------------ IKE_INTERMEDIATE (RFC 9242, RFC 9370)

    def _send_intermediate(self, now: float) -> None:
        self._transition(Input.SEND_INTERMEDIATE)
        group = self._additional_groups.pop(0)
        ke = crypto.make_ke(group)
        self._send_request(self._ike, ExchangeType.IKE_INTERMEDIATE, [KE(group, ke.public_bytes())],
                           lambda reply, now: self._on_intermediate_response(
                               group, ke, reply, now), now)

    def _on_intermediate_response(self, group, ke, reply: Reply, now: float) -> None:
        ike = self._ike
        payloads, message = reply.payloads, reply.message
        answer = first(payloads, KE)
        if answer is None or answer.group != group:
            errors = [p for p in payloads if isinstance(p, Notify) and int(p.type) < 16384]
            what = notify_name(errors[0]) if errors else "no matching KE payload"
            return self._finish(f"the gateway refused the additional key exchange: {what}")
        shared = ke.shared_secret(answer.data)
        # IntAuth covers both messages under the keys that protected them (RFC 9242 §3.3)
        old_keys = ike.keys
        self._intauth.add(ike.prf, old_keys.sk_pi, old_keys.sk_pr,
                          self._intermediate_input(message.header,
                                                   encode_payloads(reply.request_payloads),
                                                   flags=ike.flags(response=False)),
                          self._intermediate_input(message.header, reply.inner,
                                                   flags=message.header.flags))
        ike.set_keys(crypto.update_keys(ike.proposal, ike.keys, shared, self._nonce_i,
                                        self._nonce_r, ike.spi_i, ike.spi_r), self._random)
        if self._additional_groups:
            self._send_intermediate(now)
        else:
            self._send_ike_auth(now)

    def _intermediate_input(self, header: Header, chain: tuple, flags: int) -> bytes:
        first, inner = chain
        return intermediate_auth_input(self._ike.spi_i, self._ike.spi_r,
                                       ExchangeType.IKE_INTERMEDIATE, flags,
                                       header.message_id, first, inner)

    # ------------------------------------------------------------------ IKE_AUTH (§1.2, §2.15, §2.16)

    def _send_ike_auth(self, now: float) -> None:
        self._transition(Input.SEND_AUTH)
        s = self.settings
        auth = s.auth
        ike = self._ike
        self._auth_message_id = ike.next_request_id
        id_type, id_data = crypto.identity(s.local_id or s.local_address)
        self._idi = IDi(id_type, id_data)
        payloads: list = [self._idi]
        if auth.method == "pubkey" and auth.certificate is not None:
            payloads.append(CERT(CertEncoding.X509_SIGNATURE, crypto.cert_der(auth.certificate)))
            # RFC 7296 §3.6: intermediates follow the end-entity certificate, so a gateway that
            # only knows the root can build the chain.
            payloads.extend(CERT(CertEncoding.X509_SIGNATURE, crypto.cert_der(ca))
                            for ca in auth.intermediates)
        if s.initial_contact:
            payloads.append(Notify(NotifyType.INITIAL_CONTACT))
        payloads += self._s._mobike.offer()  # RFC 4555 §3.1
        payloads += msgid_sync.announcements()  # RFC 6311 (HA clusters)
        if auth.method != "psk" and auth.send_certreq and auth.trust_anchors:
            payloads.append(CERTREQ(CertEncoding.X509_SIGNATURE,
                                    crypto.certreq_data(auth.trust_anchors)))
        if s.remote_id and s.send_remote_id and not accepts_any(s.remote_id):
            payloads.append(IDr(*crypto.identity(s.remote_id)))
        if auth.method == "eap":
            self._eap = crypto.make_eap_client(auth, s.local_id, now, self._random)
            payloads += eap_only.request_notifies(auth)  # RFC 5998 §3
        else:
            try:
                payloads.append(self._our_auth())
            except crypto.AuthError as exc:  # e.g. an empty PSK, a key the gateway refuses
                reason = f"cannot authenticate: {exc}"
                return self._finish(reason, AuthenticationFailed(reason, AUTH_LOCAL))
            if auth.eap_after_certificate:
                if not self._peer_multiple_auth:
                    reason = ("the gateway does not support a second authentication round "
                              "(no MULTIPLE_AUTH_SUPPORTED, RFC 4739)")
                    return self._finish(reason, AuthenticationFailed(reason))
                payloads.append(Notify(NotifyType.ANOTHER_AUTH_FOLLOWS))
        request_cp = config_payload.build_request(s)
        if request_cp.attributes:
            payloads.append(request_cp)
        self._first_child_spi = self._child_sas.new_spi()
        payloads += self._child_sas.offer(self._first_child_spi)
        payloads.append(Notify(NotifyType.ESP_TFC_PADDING_NOT_SUPPORTED))
        self._send_request(ike, ExchangeType.IKE_AUTH, payloads, self._on_ike_auth_response, now)

    def _signed_octets(self, ours: bool) -> bytes:
        """§2.15 (+ RFC 9242 IntAuth): what the AUTH payloads cover."""
        ike = self._ike
        intauth = self._intauth.auth_data(self._auth_message_id)
        if ours:
            return crypto.signed_octets(self._init_request, self._nonce_r, ike.prf,
                                        ike.keys.sk_pi, self._idi) + intauth
        return crypto.signed_octets(self._init_response, self._nonce_i, ike.prf,
                                    ike.keys.sk_pr, self._peer_idr) + intauth

    def _our_auth(self) -> AUTH:
        auth = self.settings.auth
        octets = self._signed_octets(ours=True)
        if auth.method == "psk":
            return AUTH(AuthMethod.SHARED_KEY_MIC,
                        crypto.psk_auth(self._ike.prf, auth.psk, octets))
        if self._eap_done:
            # §2.16: keyed with the MSK; methods without one (MD5) use SK_pi like strongSwan
            key = self._msk or self._ike.keys.sk_pi
            return AUTH(AuthMethod.SHARED_KEY_MIC, crypto.psk_auth(self._ike.prf, key, octets))
        method, data = crypto.sign(auth.private_key, octets, self._peer_hash_algorithms)
        return AUTH(method, data)

    def _on_ike_auth_response(self, reply: Reply, now: float) -> None:
        payloads = reply.payloads
        self._last_auth_payloads = payloads  # IDr for an EAP-only gateway (_eap_only_allowed)
        auth = self.settings.auth
        notifies = {int(p.type): p for p in payloads if isinstance(p, Notify)}
        if NotifyType.AUTHENTICATION_FAILED in notifies:
            eap = first(payloads, EAP)
            if eap is not None and self._eap is not None:
                self._eap.respond(eap.data, now)  # an EAP-Failure may say more than the notify
                if crypto.eap_failed(self._eap):
                    reason = crypto.eap_failure_reason(self._eap)
                    return self._finish(reason, AuthenticationFailed(reason))
            reason = {
                "psk": "the gateway rejected our credentials (wrong pre-shared key?)",
                "pubkey": "the gateway rejected our certificate (not trusted, or wrong identity?)",
                "eap": "the gateway rejected our credentials (wrong user name or password?)",
            }.get(auth.method, "the gateway rejected our credentials")
            return self._finish(reason, AuthenticationFailed(reason))
        idr = first(payloads, IDr)
        gateway_auth = first(payloads, AUTH)
        if not self._gateway_authenticated or self._eap_done:
            if gateway_auth is None and first(payloads, EAP) is None:
                errors = [p for p in payloads if isinstance(p, Notify) and int(p.type) < 16384]
                what = notify_name(errors[0]) if errors else "no AUTH payload"
                return self._finish(f"IKE_AUTH failed: {what}")
            if gateway_auth is not None:
                failure = self._verify_gateway(idr, gateway_auth, payloads, now)
                if failure:
                    return self._finish(failure, AuthenticationFailed(failure, AUTH_GATEWAY))
                if self.revocation.hold(lambda later: self._on_ike_auth_response(reply, later),
                                        self._events):
                    return  # resumed by IkeSession.revocation_checked() (revocation_gate.py)
        # §3.10.1: an error we do not know in a response means the request failed; those
        # about the first CHILD_SA leave the IKE_SA up (_install_first_child).
        unknown = [p for p in payloads if isinstance(p, Notify) and int(p.type) < 16384
                   and int(p.type) not in CHILD_SA_ERRORS]
        if unknown:
            return self._finish(f"IKE_AUTH failed: {notify_name(unknown[0])}")
        self._s._msgid_sync.note_ike_auth_response(payloads)
        eap = first(payloads, EAP)
        if eap is not None:
            return self._continue_eap(eap, now)
        if gateway_auth is None:
            return self._finish("IKE_AUTH response without AUTH")
        if auth.eap_after_certificate and self._eap is None:
            return self._start_eap_round(now)
        if (auth.method == "eap" or auth.eap_after_certificate) and not self._eap_done:
            return self._finish("the gateway skipped EAP authentication")
        self._transition(Input.AUTHENTICATED)
        self._on_established(payloads, notifies, now)

    def _verify_gateway(self, idr, gateway_auth, payloads, now) -> str:
        """Return a plain-words failure, or "" if the gateway proved who it is."""
        s = self.settings
        auth = s.auth
        if idr is None and self._peer_idr is None:
            return "the gateway did not identify itself"
        if idr is not None:
            self._peer_idr = idr
            self._peer_identity = crypto.format_identity(idr)
        octets = self._signed_octets(ours=False)
        if auth.method == "psk" or self._eap_done:
            key = auth.psk if auth.method == "psk" else (self._msk or self._ike.keys.sk_pr)
            expected = crypto.psk_auth(self._ike.prf, key, octets)
            if (gateway_auth.method != AuthMethod.SHARED_KEY_MIC
                    or not bytes_equal(expected, gateway_auth.data)):
                if auth.method == "psk":
                    return "the gateway's pre-shared key does not match ours"
                return "the gateway's EAP authentication data is wrong"
            if (auth.method == "psk" or self._eap_only_gateway) and s.remote_id \
                    and not accepts_any(s.remote_id) \
                    and not crypto.identity_matches(s.remote_id, self._peer_idr):
                return f"the gateway identified itself as {self._peer_identity}, not {s.remote_id}"
            if auth.method == "psk" and not s.remote_id and s.gateway_name:
                failure = idr_mismatch(self._peer_identity, crypto.identity_matches(
                    s.gateway_name, self._peer_idr), s.gateway_name)
                if failure:
                    return failure
            self._gateway_authenticated = True
            return ""
        certs = [p for p in payloads if isinstance(p, CERT)]
        if not certs:
            return "the gateway sent no certificate"
        # Like strongSwan: the certificate must name the identity the gateway claims (IDr),
        # and that identity must be the one we expect (remote_id; unset accepts any).
        if s.remote_id and not accepts_any(s.remote_id) \
                and not crypto.identity_matches(s.remote_id, self._peer_idr):
            return (f"gateway certificate does not match {s.remote_id} "
                    f"(the gateway says it is {self._peer_identity})")
        try:
            end_entity, intermediates = crypto.load_certificates(certs)
            if not s.remote_id and s.gateway_name:  # prove the dialled name (issue 13 §1)
                failure = certificate_mismatch(end_entity, s.gateway_name)
                if failure:
                    return failure
            chain = crypto.validate_certificate(end_entity, intermediates, auth.trust_anchors,
                                                (self._peer_idr.id_type, self._peer_idr.data), now)
            crypto.verify_signature(gateway_auth, octets, end_entity)
        except crypto.AuthError as exc:
            return str(exc) or "the gateway's signature is invalid"
        self._gateway_authenticated = True
        self.revocation.chain = crypto.der_chain(chain)
        return ""

    def _start_eap_round(self, now: float) -> None:
        """RFC 4739 §3.2: after the certificate round, a second IKE_AUTH round with the EAP
        identity as IDi and no AUTH starts EAP; its AUTH is MSK-based (§2.16)."""
        s = self.settings
        self._eap = crypto.make_eap_client(s.auth, s.local_id, now, self._random)
        self._idi = IDi(*crypto.identity(s.auth.eap_identity or s.local_id))
        self._transition(Input.CONTINUE_AUTH)
        self._send_request(self._ike, ExchangeType.IKE_AUTH, [self._idi],
                           self._on_ike_auth_response, now)

    def _continue_eap(self, eap: EAP, now: float) -> None:
        """§2.16: relay EAP until success, then AUTH with the MSK."""
        if self._eap is None:
            return self._finish("the gateway started EAP, which we did not ask for")
        if not self._gateway_authenticated and not self._eap_only_allowed(eap):
            return self._finish("the gateway started EAP before proving its identity",
                                AuthenticationFailed("the gateway did not authenticate itself",
                                                     AUTH_GATEWAY))
        answer = self._eap.respond(eap.data, now)
        self._transition(Input.CONTINUE_AUTH)
        if answer is not None:
            def send(later: float, answer=answer) -> None:
                self._send_request(self._ike, ExchangeType.IKE_AUTH, [EAP(answer)],
                                   self._on_ike_auth_response, later)

            if not self.revocation.hold_eap(self._eap, send, self._events):  # revocation_gate.py
                send(now)
            return
        if crypto.eap_failed(self._eap):
            reason = crypto.eap_failure_reason(self._eap)
            return self._finish(reason, AuthenticationFailed(reason))
        self._msk = crypto.eap_msk(self._eap)
        self._eap_done = True
        self._send_request(self._ike, ExchangeType.IKE_AUTH, [self._our_auth()],
                           self._on_ike_auth_response, now)

    def _eap_only_allowed(self, eap: EAP) -> bool:
        """RFC 5998: a gateway without AUTH (but with IDr) when we asked for EAP-only and
        only mutual methods are allowed; its identity is checked with the final AUTH."""
        if not eap_only.may_skip_gateway_auth(self.settings.auth, self._eap):
            return False
        if self._peer_idr is None:
            idr = first(self._last_auth_payloads, IDr)
            if idr is None:
                return False
            self._peer_idr, self._peer_identity = idr, crypto.format_identity(idr)
        self._eap_only_gateway = True
        return True

    def _on_established(self, payloads: list, notifies: dict, now: float) -> None:
        ike = self._ike
        self._events.append(IkeSaEstablished(
            spi_i=ike.spi_i, spi_r=ike.spi_r, peer_identity=self._peer_identity,
            remote_addr=self._requests.remote,
            nat_detected=self._nat_detected or self._requests.nat_t,
            proposal=crypto.describe(ike.proposal)))
        self._lifetimes.schedule_ike_rekey(since=now)
        self._lifetimes.schedule_own_reauth(now)
        if NotifyType.AUTH_LIFETIME in notifies:
            self._lifetimes.on_auth_lifetime(notifies[NotifyType.AUTH_LIFETIME], now)
        self._s._mobike.on_established(notifies)
        self._informational.record_additional_addresses(payloads)
        cp = first(payloads, CP)
        if cp is not None:
            self._events.append(config_payload.parse_reply(cp))
        if NotifyType.REDIRECT in notifies:  # RFC 5685 §6: after IKE_AUTH, move on
            try:
                gateway, _ = decode_redirect(notifies[NotifyType.REDIRECT].data)
            except RedirectError:
                gateway = None
            if gateway:
                self._informational.close_after_established(redirect=gateway)
                return
        child_failure = self._install_first_child(payloads, notifies, now)
        if child_failure:
            # A VPN client without a tunnel is of no use: report and delete the IKE_SA.
            self._informational.close_after_established(reason=child_failure)

    def _install_first_child(self, payloads, notifies, now) -> str:
        sa = first(payloads, SA)
        if sa is None:
            for kind, text in ((NotifyType.NO_PROPOSAL_CHOSEN, None),
                               (NotifyType.TS_UNACCEPTABLE,
                                "the gateway refused our traffic selectors"),
                               (NotifyType.FAILED_CP_REQUIRED,
                                "the gateway requires a configuration request"),
                               (NotifyType.INTERNAL_ADDRESS_FAILURE,
                                "the gateway has no virtual address for us"),
                               (NotifyType.SINGLE_PAIR_REQUIRED,
                                "the gateway wants a single pair of traffic selectors")):
                if kind in notifies:
                    if text is None:
                        text = "the gateway accepted none of our ESP proposals"
                        self._events.append(ProposalMismatch(tuple(map(str, self._offered_esp)),
                                                             text))
                    return text
            return "the gateway did not set up a CHILD_SA"
        try:
            child = self._child_sas.from_response(
                self._ike, payloads, self._first_child_spi, self._nonce_i, self._nonce_r, b"",
                now, child_id=None, we_initiated=True)
        except ProtocolViolation as exc:
            return str(exc)
        except crypto.ProposalError as exc:
            return f"the gateway chose an ESP proposal we did not offer: {exc}"
        self._events.append(child.established_event())
        return ""
