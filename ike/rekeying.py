"""CREATE_CHILD_SA (§1.3): rekeying CHILD_SAs and the IKE_SA in both directions,
make-before-break, collisions (§2.8.1, §2.8.2) and refusals (§2.25).

`Rekeying` is a collaborator of IkeSession (session.py). It owns the rekeys under way (ours
and the gateway's, kept for collision resolution) and the IKE_SAs rekeyed away until their
DELETE is done. It reaches the rest of the session through the request channel, the CHILD_SA
set, the lifetimes, informational (DELETEs) and the session's current IKE_SA (`_ike`, which
only `_switch_ike` here replaces).
"""

from __future__ import annotations

import logging
import struct
from typing import Optional

from .session_part import SessionPart
from .child_sa import ChildInput, ChildSa, ChildState
from .constants import ExchangeType, NotifyType, ProtocolId
from .events import ChildSaRekeyed, IkeSaRekeyed
from .ike_sa import (NONCE_SIZE, TEMPORARY_FAILURE_RETRY, IkeSaContext, ProtocolViolation,
                     RekeyExchange, State, first, lowest_nonce, new_ike_spi, notify_name)
from .payloads import KE, SA, Delete, Nonce, Notify, TSi, TSr
from . import session_crypto as crypto
from . import traffic_selectors

log = logging.getLogger(__name__)


class Rekeying(SessionPart):
    """IkeSession's CREATE_CHILD_SA exchanges, ours and the gateway's."""

    def __init__(self, session) -> None:
        super().__init__(session)
        self._rekeys: dict[int, RekeyExchange] = {}  # child_id -> our CHILD rekey
        self._peer_rekeys: dict[int, RekeyExchange] = {}  # child_id -> the gateway's
        self._ike_rekey: Optional[RekeyExchange] = None
        self._peer_ike_rekey: Optional[RekeyExchange] = None
        self.old_ikes: list[IkeSaContext] = []  # rekeyed IKE_SAs until their DELETE is done

    # The parts of the session this collaborator uses (its narrow interface)

    # ------------------------------------------------------------------ what the session asks

    @property
    def ike_rekey_running(self) -> bool:
        return self._ike_rekey is not None

    def contexts(self) -> list:
        """IKE_SAs besides the current one that may still receive messages."""
        result = list(self.old_ikes)
        for exchange in (self._ike_rekey, self._peer_ike_rekey):
            if exchange is not None and isinstance(exchange.result, IkeSaContext):
                result.append(exchange.result)
        return result

    def start_child_rekey(self, child: ChildSa) -> None:
        child.apply(ChildInput.START_REKEY)
        self._requests.queue(lambda now, c=child: self._send_child_rekey(c, now))

    def start_ike_rekey(self) -> None:
        if self._ike_rekey is None:
            self._ike_rekey = RekeyExchange("ike", self._s._ike)
            self._requests.queue(self._send_ike_rekey)

    # ------------------------------------------------------------------ our CREATE_CHILD_SA

    def _send_child_rekey(self, old: ChildSa, now: float) -> None:
        if (not self._child_sas.holds(old) or old.state is not ChildState.REKEYING
                or self._s.state is not State.ESTABLISHED):
            return  # deleted, or the gateway rekeyed it while our request was queued
        spi_in = self._child_sas.new_spi()
        nonce = self._s._random(NONCE_SIZE)
        ke = None
        ke_payload = None
        # strongSwan: PFS whenever the ESP proposals name a KE group (the IKE_AUTH choice
        # never has one, §1.2, so look at what we offer)
        group = crypto.esp_offered_pfs_group(self._s._offered_esp)
        if group:
            ke = crypto.make_ke(group)
            ke_payload = KE(group, ke.public_bytes())
        exchange = RekeyExchange("child", old, nonce_i=nonce)
        self._rekeys[old.child_id] = exchange
        payloads = [Notify(NotifyType.REKEY_SA, ProtocolId.ESP, old.spi_in)]
        offer = self._child_sas.offer(spi_in, ke_payload, ts=(old.local_ts, old.remote_ts))
        payloads += [offer[0], Nonce(nonce)] + offer[1:]
        payloads.append(Notify(NotifyType.ESP_TFC_PADDING_NOT_SUPPORTED))
        self._requests.send_request(
            self._s._ike, ExchangeType.CREATE_CHILD_SA, payloads,
            lambda reply, t: self._on_child_rekey_response(exchange, spi_in, ke, reply.payloads,
                                                           t), now)

    def _on_child_rekey_response(self, exchange: RekeyExchange, spi_in, ke, payloads, now):
        old: ChildSa = exchange.old
        del self._rekeys[old.child_id]
        notifies = {int(p.type): p for p in payloads if isinstance(p, Notify)}
        if NotifyType.TEMPORARY_FAILURE in notifies:
            old.apply(ChildInput.REKEY_FAILED)  # §2.25: try again a little later
            old.rekey_at = (now + TEMPORARY_FAILURE_RETRY
                            + self._lifetimes.jitter(TEMPORARY_FAILURE_RETRY))
            return
        if NotifyType.CHILD_SA_NOT_FOUND in notifies:
            # The gateway no longer has it: drop ours and set up a fresh one (§2.25)
            self._child_sas.remove(old, "the gateway no longer knows this CHILD_SA")
            self._requests.queue(lambda t, c=old.child_id: self.send_new_child(c, t))
            return
        nonce = first(payloads, Nonce)
        if nonce is None or first(payloads, SA) is None:
            old.apply(ChildInput.REKEY_FAILED)
            old.rekey_at = now + TEMPORARY_FAILURE_RETRY
            errors = [p for p in payloads if isinstance(p, Notify)]
            log.warning("CHILD_SA rekey refused: %s",
                        notify_name(errors[0]) if errors else "no SA")
            return
        try:
            shared = b""
            if ke is not None:
                answer = first(payloads, KE)
                if answer is None:
                    raise ProtocolViolation("PFS rekey answered without KE")
                shared = ke.shared_secret(answer.data)
            new = self._child_sas.from_response(self._s._ike, payloads, spi_in,
                                                exchange.nonce_i, nonce.data, shared, now,
                                                old.child_id, we_initiated=True,
                                                with_ke=ke is not None,
                                                ts=(old.local_ts, old.remote_ts))
        except (ProtocolViolation, *crypto.CRYPTO_ERRORS) as exc:
            # An answer we cannot use: keep the old SA, retry later, and have the gateway
            # drop the SA it just installed (it knows it by our SPI)
            log.warning("CHILD_SA rekey failed: %s", exc)
            old.apply(ChildInput.REKEY_FAILED)
            old.rekey_at = now + TEMPORARY_FAILURE_RETRY
            self._peer_rekeys.pop(old.child_id, None)
            self._requests.queue(lambda t: self._requests.send_request(
                self._s._ike, ExchangeType.INFORMATIONAL, [Delete(ProtocolId.ESP, [spi_in])],
                lambda reply, t2: None, t))
            return
        exchange.nonce_r = nonce.data
        exchange.result = new
        self._s._events.append(new.established_event())
        self._complete_child_rekey(exchange, old, new)

    def _complete_child_rekey(self, exchange: RekeyExchange, old: ChildSa,
                              new: ChildSa) -> None:
        """Our new CHILD_SA is up: resolve a collision with the gateway's rekey of the same
        SA (§2.8.1), then delete the SA that lost."""
        collision = self._peer_rekeys.pop(old.child_id, None)
        if collision is not None and lowest_nonce(exchange) < lowest_nonce(collision):
            # §2.8.1: ours holds the lowest nonce, so ours is redundant: delete it; the
            # gateway, whose SA survives, deletes the old one.
            self._s._events.append(ChildSaRekeyed(old.child_id, old.spi_in, old.spi_out,
                                                  collision.result.spi_in,
                                                  collision.result.spi_out))
            new.apply(ChildInput.SEND_DELETE)
            self._requests.queue_first(
                lambda t, c=new: self._informational.send_child_delete(c, t, "redundant"))
            return
        if collision is not None:
            collision.result.apply(ChildInput.REPLACED)  # the gateway deletes its redundant SA
        self._s._events.append(ChildSaRekeyed(old.child_id, old.spi_in, old.spi_out,
                                              new.spi_in, new.spi_out))
        old.apply(ChildInput.REPLACED)
        self._requests.queue_first(
            lambda t, c=old: self._informational.send_child_delete(c, t, "rekeyed"))

    def send_new_child(self, child_id: int, now: float) -> None:
        """CREATE_CHILD_SA without REKEY_SA, keeping child_id (after CHILD_SA_NOT_FOUND)."""
        if self._s.state is not State.ESTABLISHED:
            return
        spi_in = self._child_sas.new_spi()
        nonce = self._s._random(NONCE_SIZE)
        offer = self._child_sas.offer(spi_in)
        payloads = [offer[0], Nonce(nonce)] + offer[1:]

        def on_response(reply, t):
            p = reply.payloads
            answer = first(p, Nonce)
            if answer is None or first(p, SA) is None:
                return self._informational.close_with(
                    "the gateway refused to set up the CHILD_SA again")
            child = self._child_sas.from_response(self._s._ike, p, spi_in, nonce, answer.data,
                                                  b"", t, child_id, we_initiated=True)
            self._s._events.append(child.established_event())

        self._requests.send_request(self._s._ike, ExchangeType.CREATE_CHILD_SA, payloads,
                                    on_response, now)

    def _send_ike_rekey(self, now: float) -> None:
        """§1.3.2: CREATE_CHILD_SA with an IKE SA payload, new SPI, nonce and KE."""
        exchange = self._ike_rekey
        if exchange is None or self._s.state is not State.ESTABLISHED:
            return
        new_spi = new_ike_spi(self._s._random)
        nonce = self._s._random(NONCE_SIZE)
        exchange.nonce_i = nonce
        group = crypto.ike_chosen_group(self._s._ike.proposal)
        ke = crypto.make_ke(group)
        payloads = [SA(crypto.ike_proposal_payloads(self._rekey_offers(), spi=new_spi)),
                    Nonce(nonce), KE(group, ke.public_bytes())]
        self._requests.send_request(
            self._s._ike, ExchangeType.CREATE_CHILD_SA, payloads,
            lambda reply, t: self._on_ike_rekey_response(exchange, new_spi, ke, reply.payloads,
                                                         t), now)

    def _on_ike_rekey_response(self, exchange, new_spi, ke, payloads, now) -> None:
        notifies = {int(p.type): p for p in payloads if isinstance(p, Notify)}
        sa, nonce, answer = first(payloads, SA), first(payloads, Nonce), first(payloads, KE)
        if sa is None or nonce is None or answer is None:
            self._ike_rekey = None
            delay = TEMPORARY_FAILURE_RETRY if NotifyType.TEMPORARY_FAILURE in notifies \
                else self._s.settings.ike_rand_time or TEMPORARY_FAILURE_RETRY
            self._lifetimes.ike_rekey_at = (now + delay
                                            + self._lifetimes.jitter(TEMPORARY_FAILURE_RETRY))
            return
        try:
            chosen = crypto.choose_ike(self._rekey_offers(), sa)
            shared = ke.shared_secret(answer.data)
        except crypto.CRYPTO_ERRORS as exc:
            log.warning("IKE_SA rekey failed: %s", exc)
            self._ike_rekey = None
            self._lifetimes.ike_rekey_at = now + TEMPORARY_FAILURE_RETRY + self._lifetimes.jitter(
                TEMPORARY_FAILURE_RETRY)
            return
        old = self._s._ike
        new = IkeSaContext(spi_i=new_spi, spi_r=sa.proposals[0].spi, we_are_initiator=True,
                           proposal=chosen, fragmentation=old.fragmentation)
        self._key_new_ike(new, old, shared, exchange.nonce_i, nonce.data)
        exchange.nonce_r = nonce.data
        exchange.result = new
        self._ike_rekey = None
        collision, self._peer_ike_rekey = self._peer_ike_rekey, None
        if collision is not None and lowest_nonce(exchange) < lowest_nonce(collision):
            # §2.8.2: ours holds the lowest nonce, so our new IKE_SA is redundant: move to
            # the gateway's, delete ours; the gateway deletes the old one.
            self._switch_ike(old, collision.result)
            self.old_ikes.append(new)
            self._requests.queue_first(lambda t: self._informational.send_ike_delete_of(new, t))
            return
        if collision is not None:
            self.old_ikes.append(collision.result)  # redundant; the gateway deletes it
        self._switch_ike(old, new)
        self._requests.queue_first(lambda t: self._informational.send_ike_delete_of(old, t))

    def _rekey_offers(self) -> list:
        """IKE proposals for a rekey: the current algorithms first. Keeping the PRF avoids a
        known divergence: strongSwan 5.9 runs prf+ of a rekeyed IKE_SA with the *old* PRF
        (keymat_v2.c), RFC 7296 §2.18 and ike/keys.py with the new one; with one PRF both
        agree. Without ADDKE transforms: IKE_FOLLOWUP_KE (RFC 9370 §2.2.4) is not
        implemented, so a rekey must not negotiate additional key exchanges."""
        return crypto.without_additional_ke([self._s._ike.proposal, *self._s._offered_ike])

    def _key_new_ike(self, new, old, shared, ni, nr) -> None:
        """§2.18: SKEYSEED = prf(SK_d (old), g^ir (new) | Ni | Nr)."""
        new.prf = crypto.make_prf_for(new.proposal)
        new.set_keys(crypto.derive_ike_keys(new.proposal, shared, ni, nr, new.spi_i,
                                            new.spi_r, old_sk_d=old.keys.sk_d,
                                            old_prf=old.proposal.prf_id), self._s._random)

    def _switch_ike(self, old: IkeSaContext, new: IkeSaContext) -> None:
        """Make `new` the IKE_SA; CHILD_SAs move over with it (§2.18)."""
        self._s._ike = new
        if old not in self.old_ikes:
            self.old_ikes.append(old)
        self._s._events.append(IkeSaRekeyed(old.spi_i, old.spi_r, new.spi_i, new.spi_r))
        self._lifetimes.schedule_ike_rekey(since=self._lifetimes.last_received)

    def retire(self, ike: IkeSaContext, now: float) -> None:
        """Forget a replaced IKE_SA. A request of ours still waiting on it can never be
        answered now: drop it, and let a CHILD_SA rekey it carried start again later."""
        if ike in self.old_ikes:
            self.old_ikes.remove(ike)
        requests = self._requests
        if requests.outstanding is not None and requests.outstanding.ike is ike:
            requests.outstanding = None
            for child_id, exchange in list(self._rekeys.items()):
                del self._rekeys[child_id]
                exchange.old.apply(ChildInput.REKEY_FAILED)
                exchange.old.rekey_at = now + TEMPORARY_FAILURE_RETRY

    # ------------------------------------------------------------------ the gateway's CREATE_CHILD_SA

    def answer_create_child_sa(self, ike, payloads, now) -> list:
        """CREATE_CHILD_SA from the gateway: a rekey of a CHILD_SA or of the IKE_SA, or a
        new CHILD_SA (strongSwan recreates one after a hard expiry)."""
        sa = first(payloads, SA)
        nonce = first(payloads, Nonce)
        tsi, tsr = first(payloads, TSi), first(payloads, TSr)
        if sa is None or nonce is None:
            return [Notify(NotifyType.INVALID_SYNTAX)]
        if sa.proposals and sa.proposals[0].protocol == ProtocolId.IKE:
            return self._answer_ike_rekey(ike, sa, nonce, payloads, now)
        if tsi is None or tsr is None:
            return [Notify(NotifyType.INVALID_SYNTAX)]
        if self._ike_rekey is not None and self._ike_rekey.result is None \
                and self._requests.outstanding is not None:
            return [Notify(NotifyType.TEMPORARY_FAILURE)]  # §2.25: our IKE rekey is running
        rekey = next((p for p in payloads if isinstance(p, Notify)
                      and p.type == NotifyType.REKEY_SA), None)
        old = None
        if rekey is not None:
            old = self._child_sas.by_spi_out(rekey.spi)
            if old is None or old.state is ChildState.DELETING:
                return [Notify(NotifyType.CHILD_SA_NOT_FOUND, ProtocolId.ESP, rekey.spi)]
            if old.state is ChildState.REKEYED:
                return [Notify(NotifyType.TEMPORARY_FAILURE)]
            # the gateway proposes the SA's current selectors: keep them
            their_side, our_side = tsi.selectors, tsr.selectors
        else:
            # §2.9 as responder: the gateway's TSi is its side, TSr ours; narrow to policy
            their_side = traffic_selectors.narrow(
                tsi.selectors, traffic_selectors.selectors_for(self._s.settings.remote_ts))
            our_side = traffic_selectors.narrow(
                tsr.selectors, traffic_selectors.selectors_for(self._s.settings.local_ts))
            if not their_side or not our_side:
                return [Notify(NotifyType.TS_UNACCEPTABLE)]
        return self._accept_child(sa, nonce, first(payloads, KE), old, their_side, our_side, now)

    def _accept_child(self, sa, nonce, their_ke, old: Optional[ChildSa], their_side, our_side,
                      now) -> list:
        """Choose an ESP proposal (and PFS group) from the gateway's CREATE_CHILD_SA, install
        the new CHILD_SA and answer SA Nonce [KE] TSi TSr."""
        try:
            if their_ke is not None:
                selection = crypto.select_esp_for_peer_ke(self._s._offered_esp, sa,
                                                          their_ke.group)
            else:
                selection = crypto.select_esp(self._s._offered_esp, sa, with_ke=False)
        except crypto.ProposalError:
            return [Notify(NotifyType.NO_PROPOSAL_CHOSEN)]
        chosen = selection.proposal
        our_nonce = self._s._random(NONCE_SIZE)
        shared = b""
        response_ke = []
        group = crypto.esp_pfs_group(chosen)
        if group:
            if their_ke is None:
                return [Notify(NotifyType.INVALID_SYNTAX)]
            if their_ke.group != group:
                return [Notify(NotifyType.INVALID_KE_PAYLOAD, data=struct.pack("!H", group))]
            ke = crypto.make_ke(group)
            shared = ke.shared_secret(their_ke.data)
            response_ke = [KE(group, ke.public_bytes())]
        spi_in = self._child_sas.new_spi()
        new = self._child_sas.install(self._s._ike, chosen, spi_in, selection.spi, nonce.data,
                                      our_nonce, shared, traffic_selectors.networks_of(our_side),
                                      traffic_selectors.networks_of(their_side),
                                      now, old.child_id if old is not None else None,
                                      we_initiated=False)
        self._s._events.append(new.established_event())
        if old is not None:
            self._note_gateway_child_rekey(old, new, nonce.data, our_nonce)
        proposal = chosen.to_payload(selection.number, spi_in, with_ke=bool(group))
        return [SA([proposal]), Nonce(our_nonce), *response_ke, TSi(their_side),
                TSr(our_side)]

    def _note_gateway_child_rekey(self, old: ChildSa, new: ChildSa, ni: bytes,
                                  nr: bytes) -> None:
        exchange = RekeyExchange("child", old, nonce_i=ni, nonce_r=nr, result=new)
        if old.child_id in self._rekeys:
            self._peer_rekeys[old.child_id] = exchange  # §2.8.1: decided by our response
        else:
            self._s._events.append(ChildSaRekeyed(old.child_id, old.spi_in, old.spi_out,
                                               new.spi_in, new.spi_out))
            old.apply(ChildInput.REPLACED)  # the gateway will DELETE it

    def _answer_ike_rekey(self, ike, sa, nonce, payloads, now) -> list:
        """The gateway rekeys the IKE_SA (§1.3.2, §2.18); it becomes the new SA's initiator."""
        if ike is not self._s._ike:
            return [Notify(NotifyType.TEMPORARY_FAILURE)]
        if self._child_sas.any_rekeying() \
                and self._requests.outstanding is not None:
            return [Notify(NotifyType.TEMPORARY_FAILURE)]  # §2.25: finish the CHILD rekey first
        their_ke = first(payloads, KE)
        try:
            selection = crypto.select_ike(self._rekey_offers(), sa,
                                          their_ke.group if their_ke is not None else None)
        except crypto.ProposalError:
            return [Notify(NotifyType.NO_PROPOSAL_CHOSEN)]
        chosen = selection.proposal
        if len(selection.spi) != 8:  # §3.3.1: a new IKE_SA's SPI has 8 octets (found by fuzzing)
            return [Notify(NotifyType.INVALID_SYNTAX)]
        group = crypto.ike_chosen_group(chosen)
        if their_ke is None or their_ke.group != group:
            return [Notify(NotifyType.INVALID_KE_PAYLOAD, data=struct.pack("!H", group))]
        ke = crypto.make_ke(group)
        shared = ke.shared_secret(their_ke.data)
        our_spi = new_ike_spi(self._s._random)
        our_nonce = self._s._random(NONCE_SIZE)
        new = IkeSaContext(spi_i=selection.spi, spi_r=our_spi, we_are_initiator=False,
                           proposal=chosen, fragmentation=ike.fragmentation)
        self._key_new_ike(new, ike, shared, nonce.data, our_nonce)
        exchange = RekeyExchange("ike", ike, nonce_i=nonce.data, nonce_r=our_nonce, result=new)
        ours = self._ike_rekey
        if ours is not None and ours.nonce_i and self._requests.outstanding is not None:
            self._peer_ike_rekey = exchange  # collision: decided when our response arrives
        else:
            self._switch_ike(ike, new)  # the gateway deletes the old IKE_SA next
            if ours is not None and not ours.nonce_i:
                self._ike_rekey = None  # ours was only queued: no need any more
        return [SA([chosen.to_payload(selection.number, our_spi)]), Nonce(our_nonce),
                KE(group, ke.public_bytes())]
