"""Key derivation for IKE and Child SAs (RFC 7296 §2.13, §2.14, §2.17, §2.18; RFC 9370 §2.2).

Everything here is a pure function of its inputs. The `proposal` arguments are the chosen
`ike.proposals.IkeProposal` / `EspProposal`; only these attributes are read:
`encr_id`, `encr_key_bits`, `integ_id` (None for AEAD) and, for IKE, `prf_id`.

SKEYSEED keys the PRF with Ni ‖ Nr, except for the fixed-key-size PRF AES-XCBC-PRF-128, which
takes only the first 64 bits of each nonce (RFC 7296 §2.14). (AES-CMAC-PRF-128 would too;
`make_prf` refuses it.)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

from ike.constants import IntegId
from ike.transforms import (
    Prf,
    cipher_keymat_size,
    integrity_key_size,
    make_prf,
)

__all__ = [
    "ChildSaKeymat",
    "IkeSaKeys",
    "derive_child_sa_keymat",
    "derive_ike_sa_keys",
    "prf_plus",
    "update_for_additional_ke",
]


def prf_plus(prf: Prf, key: bytes, seed: bytes, length: int) -> bytes:
    """RFC 7296 §2.13: T1 = prf(K, S | 0x01), Tn = prf(K, T(n-1) | S | n); first `length` bytes.

    prf+ is not defined beyond 255 iterations, so asking for more raises ValueError.
    """
    if length < 0 or length > 255 * prf.output_size:
        raise ValueError(
            f"prf+ can produce at most {255 * prf.output_size} bytes with this PRF, "
            f"{length} requested"
        )
    output = bytearray()
    block = b""
    counter = 1
    while len(output) < length:
        block = prf(key, block + seed + bytes([counter]))
        output += block
        counter += 1
    return bytes(output[:length])


@dataclass(frozen=True)
class IkeSaKeys:
    """The seven IKE SA secrets of RFC 7296 §2.14. `sk_ai`/`sk_ar` are b"" with AEAD ciphers."""

    sk_d: bytes = field(repr=False)
    sk_ai: bytes = field(repr=False)
    sk_ar: bytes = field(repr=False)
    sk_ei: bytes = field(repr=False)
    sk_er: bytes = field(repr=False)
    sk_pi: bytes = field(repr=False)
    sk_pr: bytes = field(repr=False)


def _integ_key_size(proposal) -> int:
    # AEAD proposals carry no INTEG transform (or INTEG NONE), hence no SK_a and no
    # integrity KEYMAT (RFC 5282 §8).
    if proposal.integ_id in (None, IntegId.NONE):
        return 0
    return integrity_key_size(proposal.integ_id)


def _ike_keys_from_skeyseed(proposal, prf: Prf, skeyseed: bytes, ni, nr, spi_i, spi_r) -> IkeSaKeys:
    """{SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr} = prf+(SKEYSEED, Ni | Nr | SPIi | SPIr)."""
    prf_key = prf.key_size  # RFC 7296 §2.13: SK_d, SK_pi, SK_pr have the PRF's preferred key size
    integ = _integ_key_size(proposal)
    encr = cipher_keymat_size(proposal.encr_id, proposal.encr_key_bits)
    sizes = (prf_key, integ, integ, encr, encr, prf_key, prf_key)
    stream = prf_plus(prf, skeyseed, bytes(ni) + bytes(nr) + bytes(spi_i) + bytes(spi_r), sum(sizes))
    parts = []
    offset = 0
    for size in sizes:
        parts.append(stream[offset : offset + size])
        offset += size
    return IkeSaKeys(*parts)


def _check_spis(spi_i: bytes, spi_r: bytes) -> None:
    if len(spi_i) != 8 or len(spi_r) != 8:
        raise ValueError(f"IKE SPIs must be 8 bytes each, got {len(spi_i)} and {len(spi_r)}")


def derive_ike_sa_keys(
    proposal,
    shared_secret: bytes,
    ni: bytes,
    nr: bytes,
    spi_i: bytes,
    spi_r: bytes,
    old_sk_d: bytes | None = None,
    old_prf: int | None = None,
    additional_secrets: Sequence[bytes] = (),
) -> IkeSaKeys:
    """Keys of a new IKE SA.

    * Initial exchange (RFC 7296 §2.14): SKEYSEED = prf(Ni | Nr, g^ir).
    * Rekey via CREATE_CHILD_SA (§2.18), when `old_sk_d` is given:
      SKEYSEED = prf_old(SK_d(old), g^ir(new) | Ni | Nr), where prf_old is the old SA's PRF
      (`old_prf`, defaulting to the new one); prf+ then uses the new SA's PRF, as §2.18 says.
      With RFC 9370 additional exchanges in the rekey (IKE_FOLLOWUP_KE, §2.2.4) their
      secrets follow the nonces: g^ir(new) | Ni | Nr | SK(1) | … | SK(n).

    `ni`, `nr`, `spi_i`, `spi_r` are those of the exchange creating this SA.
    """
    _check_spis(spi_i, spi_r)
    prf = make_prf(proposal.prf_id)
    if old_sk_d is None:
        if additional_secrets:
            raise ValueError(
                "additional key exchanges of IKE_INTERMEDIATE are applied with "
                "update_for_additional_ke, not at IKE_SA_INIT"
            )
        if prf.fixed_key:  # RFC 7296 §2.14: only the first 64 bits of each nonce
            skeyseed = prf(bytes(ni)[:8] + bytes(nr)[:8], shared_secret)
        else:
            skeyseed = prf(bytes(ni) + bytes(nr), shared_secret)
    else:
        seed_prf = make_prf(proposal.prf_id if old_prf is None else old_prf)
        seed = bytes(shared_secret) + bytes(ni) + bytes(nr) + b"".join(map(bytes, additional_secrets))
        skeyseed = seed_prf(old_sk_d, seed)
    return _ike_keys_from_skeyseed(proposal, prf, skeyseed, ni, nr, spi_i, spi_r)


def update_for_additional_ke(
    proposal, keys: IkeSaKeys, shared_secret: bytes, ni: bytes, nr: bytes, spi_i: bytes, spi_r: bytes
) -> IkeSaKeys:
    """RFC 9370 §2.2.2: after the n-th additional key exchange in IKE_INTERMEDIATE,

        SKEYSEED(n) = prf(SK_d(n-1), SK(n) | Ni | Nr)
        {SK_d(n) | SK_ai(n) | … | SK_pr(n)} = prf+(SKEYSEED(n), Ni | Nr | SPIi | SPIr)

    with Ni, Nr and the SPIs from IKE_SA_INIT. Every key is replaced, SK_pi/SK_pr included.
    """
    _check_spis(spi_i, spi_r)
    prf = make_prf(proposal.prf_id)
    skeyseed = prf(keys.sk_d, bytes(shared_secret) + bytes(ni) + bytes(nr))
    return _ike_keys_from_skeyseed(proposal, prf, skeyseed, ni, nr, spi_i, spi_r)


@dataclass(frozen=True)
class ChildSaKeymat:
    """ESP keys of one Child SA, initiator→responder first (RFC 7296 §2.17).

    `encr_*` include the 4-byte salt of AES-GCM / ChaCha20-Poly1305; `integ_*` are b"" for AEAD.
    """

    encr_i: bytes = field(repr=False)
    integ_i: bytes = field(repr=False)
    encr_r: bytes = field(repr=False)
    integ_r: bytes = field(repr=False)


def derive_child_sa_keymat(
    proposal,
    prf_id: int,
    sk_d: bytes,
    ni: bytes,
    nr: bytes,
    shared_secret: bytes = b"",
    additional_secrets: Sequence[bytes] = (),
) -> ChildSaKeymat:
    """KEYMAT = prf+(SK_d, [g^ir (new)] | Ni | Nr [| SK(1) | … | SK(n)]) (RFC 7296 §2.17,
    RFC 9370 §2.2.4), cut as encr_i, integ_i, encr_r, integ_r.

    `prf_id` is the IKE SA's PRF; `shared_secret` is the PFS secret of a CREATE_CHILD_SA
    (empty for the first Child SA, and without PFS). The nonces are those of IKE_SA_INIT
    for the first Child SA, the fresh ones of the CREATE_CHILD_SA otherwise.
    """
    prf = make_prf(prf_id)
    encr = cipher_keymat_size(proposal.encr_id, proposal.encr_key_bits)
    integ = _integ_key_size(proposal)
    seed = bytes(shared_secret) + bytes(ni) + bytes(nr) + b"".join(map(bytes, additional_secrets))
    stream = prf_plus(prf, sk_d, seed, 2 * (encr + integ))
    encr_i = stream[:encr]
    integ_i = stream[encr : encr + integ]
    rest = stream[encr + integ :]
    return ChildSaKeymat(encr_i, integ_i, rest[:encr], rest[encr:])
