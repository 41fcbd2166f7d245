"""Proposals: strongSwan proposal syntax <-> SA payload proposals, and choosing among them.

Syntax (as in swanctl.conf): proposals are separated by commas, algorithms inside one proposal
by dashes; several algorithms of one kind in a proposal are alternatives, first preferred:

    aes256gcm16-aes128gcm16-prfsha384-x25519-ecp256-ke1_mlkem768     (IKE, AEAD)
    aes256-sha384-modp3072                                           (IKE; sha384 = INTEG + PRF)
    aes128gcm16, aes256-sha384-ecp256-esn                            (ESP; ecp256 = PFS group)

The keywords are strongSwan's (src/libstrongswan/crypto/proposal/proposal_keywords_static.txt),
with strongSwan 5.9.8's meanings:

* `default` on its own between commas stands for the default proposals (`DEFAULT_IKE` /
  `DEFAULT_ESP`) at that point, as in swanctl.conf (`aes256gcm16-prfsha384-x25519,default`);
* the normalisations of strongSwan's parser (proposal.c, check_proposal) are applied silently:
  integrity algorithms beside AEAD ciphers are dropped, a PRF in an ESP proposal is dropped,
  and in IKE an integrity algorithm without an explicit PRF also names the PRF. ESN keywords
  in IKE proposals are accepted and dropped too (strongSwan keeps them and then sends an ESN
  transform in IKE, which RFC 7296 §3.3.2 reserves for AH/ESP and strongSwan's own responder
  refuses);
* legacy algorithms (3DES, AES-CTR, HMAC-SHA1, HMAC-MD5, AES-XCBC) are accepted only when
  named; `legacy_warnings` gives a one-line warning naming the risk for each. They are never
  part of the defaults.

Algorithms considered broken beyond that (DES, NULL, MODP-1024, ...) are refused with a
`ProposalError` saying so; known algorithms that Cygnet does not implement, and unknown words,
are refused with their own message.

Initiator side: `parse_*_proposals`, `*.to_payload(number, spi)`, then `choose_ike` /
`choose_esp` to validate the responder's single answer. Responder side (used by the
in-memory test responder): `select_ike` / `select_esp`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, NamedTuple, Sequence

from ike.constants import EncrId, EsnId, IntegId, KeId, PrfId, ProtocolId, TransformType
from ike.payloads import SA, Proposal, Transform

__all__ = [
    "DEFAULT_ESP",
    "DEFAULT_IKE",
    "EspProposal",
    "IkeProposal",
    "ProposalError",
    "Selection",
    "choose_esp",
    "choose_ike",
    "legacy_warnings",
    "proposal_warnings",
    "parse_esp_proposals",
    "parse_ike_proposals",
    "select_esp",
    "select_ike",
]

#: Offered by default, AEAD first (strongSwan's client defaults, restricted to what Cygnet
#: implements; x25519 first because it is the cheapest KE payload to send).
DEFAULT_IKE = (
    "aes256gcm16-aes128gcm16-chacha20poly1305-prfsha384-prfsha256-prfsha512"
    "-x25519-ecp256-ecp384-ecp521-curve448-modp3072-modp4096-modp2048,"
    "aes256-aes192-aes128-sha384-sha256-sha512"
    "-x25519-ecp256-ecp384-ecp521-curve448-modp3072-modp4096-modp2048"
)
DEFAULT_ESP = "aes256gcm16-aes128gcm16-chacha20poly1305,aes256-aes128-sha256-sha384-sha512"
#: swanctl's keyword for "the default proposals here" (vici_config.c, parse_proposal).
_DEFAULT_KEYWORD = "default"


class ProposalError(ValueError):
    """A proposal string or an SA payload proposal is unusable. `token` names the culprit
    algorithm keyword when there is one."""

    def __init__(self, message: str, token: str | None = None):
        super().__init__(message)
        self.token = token


# --------------------------------------------------------------------------------------------
# Keywords

ENCR, PRF, INTEG, KE, ESN = "encryption", "PRF", "integrity", "key exchange", "ESN"

_AEAD = frozenset({EncrId.AES_GCM_16, EncrId.CHACHA20_POLY1305})
# Ciphers with one key size, sent without a Key Length attribute (RFC 7296 §3.3.5).
_FIXED_KEY_ENCR = {EncrId.CHACHA20_POLY1305: 256, EncrId.DES3: 192}

# keyword -> (kind, algorithm id, key bits)
_KEYWORDS: dict[str, tuple[str, int, int | None]] = {
    "aes": (ENCR, EncrId.AES_CBC, 128),
    "aes128": (ENCR, EncrId.AES_CBC, 128),
    "aes192": (ENCR, EncrId.AES_CBC, 192),
    "aes256": (ENCR, EncrId.AES_CBC, 256),
    # RFC 7634 §4: ChaCha20-Poly1305 has a fixed 256-bit key and no Key Length attribute.
    "chacha20poly1305": (ENCR, EncrId.CHACHA20_POLY1305, 256),
    "sha256": (INTEG, IntegId.HMAC_SHA2_256_128, None),
    "sha2_256": (INTEG, IntegId.HMAC_SHA2_256_128, None),
    "sha384": (INTEG, IntegId.HMAC_SHA2_384_192, None),
    "sha2_384": (INTEG, IntegId.HMAC_SHA2_384_192, None),
    "sha512": (INTEG, IntegId.HMAC_SHA2_512_256, None),
    "sha2_512": (INTEG, IntegId.HMAC_SHA2_512_256, None),
    "prfsha256": (PRF, PrfId.HMAC_SHA2_256, None),
    "prfsha384": (PRF, PrfId.HMAC_SHA2_384, None),
    "prfsha512": (PRF, PrfId.HMAC_SHA2_512, None),
    "none": (KE, KeId.NONE, None),
    "modpnone": (KE, KeId.NONE, None),
    "modp2048": (KE, KeId.MODP_2048, None),
    "modp3072": (KE, KeId.MODP_3072, None),
    "modp4096": (KE, KeId.MODP_4096, None),
    "modp6144": (KE, KeId.MODP_6144, None),
    "modp8192": (KE, KeId.MODP_8192, None),
    "ecp256": (KE, KeId.ECP_256, None),
    "ecp384": (KE, KeId.ECP_384, None),
    "ecp521": (KE, KeId.ECP_521, None),
    "curve25519": (KE, KeId.CURVE25519, None),
    "x25519": (KE, KeId.CURVE25519, None),
    "curve448": (KE, KeId.CURVE448, None),
    "x448": (KE, KeId.CURVE448, None),
    "mlkem768": (KE, KeId.MLKEM768, None),
    "mlkem1024": (KE, KeId.MLKEM1024, None),
    "esn": (ESN, EsnId.ESN, None),
    "noesn": (ESN, EsnId.NO_ESN, None),
    # Legacy: accepted only when named, with a warning (see _LEGACY_RISKS).
    "3des": (ENCR, EncrId.DES3, 192),
    "aes128ctr": (ENCR, EncrId.AES_CTR, 128),
    "aes192ctr": (ENCR, EncrId.AES_CTR, 192),
    "aes256ctr": (ENCR, EncrId.AES_CTR, 256),
    "sha1": (INTEG, IntegId.HMAC_SHA1_96, None),
    "sha": (INTEG, IntegId.HMAC_SHA1_96, None),
    "md5": (INTEG, IntegId.HMAC_MD5_96, None),
    "aesxcbc": (INTEG, IntegId.AES_XCBC_96, None),
    "prfsha1": (PRF, PrfId.HMAC_SHA1, None),
    "prfmd5": (PRF, PrfId.HMAC_MD5, None),
    "prfaesxcbc": (PRF, PrfId.AES128_XCBC, None),
}
# AES-GCM with a 16-byte ICV: strongSwan spells the ICV length in bytes, in bits, or not at all.
for _bits in (128, 192, 256):
    for _suffix in ("gcm16", "gcm128", "gcm"):
        _KEYWORDS[f"aes{_bits}{_suffix}"] = (ENCR, EncrId.AES_GCM_16, _bits)

# Known keywords Cygnet refuses on purpose, with the reason shown to the user.
_UNSAFE: dict[str, str] = {
    "null": "no encryption",
    "des": "56-bit key",
    "blowfish": "64-bit block",
    "blowfish128": "64-bit block",
    "blowfish192": "64-bit block",
    "blowfish256": "64-bit block",
    "cast128": "64-bit block",
    "md5_128": "MD5 is broken",
    "sha1_160": "SHA-1 is deprecated",
    "modpnull": "no key exchange at all",
    "modp768": "768-bit MODP is breakable",
    "modp1024": "1024-bit MODP is too weak (RFC 8247)",
    "modp1536": "1536-bit MODP is too weak (RFC 8247)",
    "modp1024s160": "1024-bit MODP is too weak (RFC 8247)",
    "modp2048s224": "RFC 5114 groups are of questionable origin (RFC 8247)",
    "modp2048s256": "RFC 5114 groups are of questionable origin (RFC 8247)",
    "ecp192": "192-bit curve is too weak",
}

# Known strongSwan keywords for algorithms Cygnet does not implement.
_UNSUPPORTED = {
    "aes128gmac", "aes192gmac", "aes256gmac",
    "chacha20poly1305compat",
    "camellia", "camellia128", "camellia192", "camellia256",
    "camellia128ctr", "camellia192ctr", "camellia256ctr",
    "serpent", "serpent128", "serpent192", "serpent256",
    "twofish", "twofish128", "twofish192", "twofish256",
    "sha256_96", "sha2_256_96", "camelliaxcbc", "aescmac",
    "prfcamelliaxcbc", "prfaescmac",
    "ecp224", "ecp224bp", "ecp256bp", "ecp384bp", "ecp512bp",
    "gost256", "gost512",
    "mlkem512",  # `cryptography` 50 has ML-KEM-768 and -1024 only
}
for _bits in (128, 192, 256):
    for _icv in ("8", "64", "12", "96", "16", "128", ""):
        _UNSUPPORTED.add(f"aes{_bits}ccm{_icv}")
        _UNSUPPORTED.add(f"camellia{_bits}ccm{_icv}")
    for _icv in ("8", "64", "12", "96"):
        _UNSUPPORTED.add(f"aes{_bits}gcm{_icv}")

# What a bare integrity keyword implies as PRF in IKE proposals without an explicit PRF.
_PRF_FOR_INTEG = {
    IntegId.HMAC_SHA2_256_128: PrfId.HMAC_SHA2_256,
    IntegId.HMAC_SHA2_384_192: PrfId.HMAC_SHA2_384,
    IntegId.HMAC_SHA2_512_256: PrfId.HMAC_SHA2_512,
    IntegId.HMAC_SHA1_96: PrfId.HMAC_SHA1,
    IntegId.HMAC_MD5_96: PrfId.HMAC_MD5,
    IntegId.AES_XCBC_96: PrfId.AES128_XCBC,
}

# Legacy algorithms: (kind, id) -> family; one warning per family and proposal.
_LEGACY = {
    (ENCR, EncrId.DES3): "3DES",
    (ENCR, EncrId.AES_CTR): "AES-CTR",
    (INTEG, IntegId.HMAC_SHA1_96): "SHA-1",
    (PRF, PrfId.HMAC_SHA1): "SHA-1",
    (INTEG, IntegId.HMAC_MD5_96): "MD5",
    (PRF, PrfId.HMAC_MD5): "MD5",
    (INTEG, IntegId.AES_XCBC_96): "AES-XCBC",
    (PRF, PrfId.AES128_XCBC): "AES-XCBC",
}
_LEGACY_RISKS = {
    "3DES": "its 64-bit block lets collisions leak plaintext after a few GB per key (Sweet32)",
    "AES-CTR": "unauthenticated counter mode; a repeated counter block reveals plaintext",
    "SHA-1": "SHA-1 is being retired (RFC 8221, RFC 8247)",
    "MD5": "MD5 is broken; RFC 8221 and RFC 8247 say MUST NOT",
    "AES-XCBC": "96-bit ICV, and its PRF caps every derived key at 128 bits",
}

_ADDKE_TYPES = tuple(TransformType(t) for t in range(TransformType.ADDKE1, TransformType.ADDKE7 + 1))


# Aliases not used when printing a proposal back as text.
_ALIASES = {"aes", "sha", "sha2_256", "sha2_384", "sha2_512", "modpnone", "curve25519", "curve448"}
_CANONICAL = {
    (kind, value, bits if kind == ENCR else None): name
    for name, (kind, value, bits) in _KEYWORDS.items()
    if name not in _ALIASES and not name.endswith(("gcm128", "gcm"))
}


def _keyword_for(kind: str, alg_id: int, key_bits: int | None = None) -> str:
    """The canonical keyword of an algorithm, for printing proposals."""
    return _CANONICAL[(kind, alg_id, key_bits if kind == ENCR else None)]


# --------------------------------------------------------------------------------------------
# Proposal values


class _PreferredCipher:
    """The preferred (for a chosen proposal: the only) cipher and integrity algorithm of an
    IKE or ESP proposal, read from its `encryption` and `integrities` fields."""

    encryption: tuple[tuple[EncrId, int], ...]
    integrities: tuple[IntegId, ...]

    @property
    def encr_id(self) -> EncrId:
        return self.encryption[0][0]

    @property
    def encr_key_bits(self) -> int:
        return self.encryption[0][1]

    @property
    def is_aead(self) -> bool:
        return self.encr_id in _AEAD

    @property
    def integ_id(self) -> IntegId | None:
        return self.integrities[0] if self.integrities else None


@dataclass(frozen=True)
class IkeProposal(_PreferredCipher):
    """An IKE proposal. Each field lists alternatives, most preferred first; a proposal the
    responder chose (from `choose_ike` / `select_ike`) has exactly one of each.

    `additional_ke[i]` lists the methods for ADDKE(i+1) (RFC 9370); an empty list means none
    is offered, and `KeId.NONE` in a list makes that additional exchange optional.
    """

    encryption: tuple[tuple[EncrId, int], ...]  # (encr id, key bits)
    prfs: tuple[PrfId, ...]
    integrities: tuple[IntegId, ...]  # empty with AEAD ciphers
    ke_groups: tuple[KeId, ...]
    additional_ke: tuple[tuple[KeId, ...], ...] = ()

    # The preferred (for a chosen proposal: the only) algorithm of each kind -------------
    # (encr_id, encr_key_bits, is_aead, integ_id: from _PreferredCipher)
    @property
    def prf_id(self) -> PrfId:
        return self.prfs[0]

    @property
    def ke_group(self) -> KeId:
        """The group whose KE payload an initiator sends in IKE_SA_INIT."""
        return self.ke_groups[0]

    @property
    def additional_ke_groups(self) -> tuple[KeId, ...]:
        """The additional exchanges to run in IKE_INTERMEDIATE, in ADDKE order (NONE skipped)."""
        return tuple(groups[0] for groups in self.additional_ke if groups and groups[0] != KeId.NONE)

    def to_payload(self, number: int, spi: bytes = b"") -> Proposal:
        """SA payload proposal; `spi` is empty in IKE_SA_INIT and 8 bytes when rekeying."""
        transforms = [_encr_transform(e, bits) for e, bits in self.encryption]
        transforms += [Transform(TransformType.PRF, p) for p in self.prfs]
        transforms += [Transform(TransformType.INTEG, i) for i in self.integrities]
        transforms += [Transform(TransformType.KE, g) for g in self.ke_groups]
        for addke_type, groups in zip(_ADDKE_TYPES, self.additional_ke):
            transforms += [Transform(addke_type, g) for g in groups]
        return Proposal(number, ProtocolId.IKE, bytes(spi), transforms)

    def __str__(self) -> str:
        words = [_keyword_for(ENCR, e, bits) for e, bits in self.encryption]
        words += [_keyword_for(INTEG, i) for i in self.integrities]
        words += [_keyword_for(PRF, p) for p in self.prfs]
        words += [_keyword_for(KE, g) for g in self.ke_groups]
        for n, groups in enumerate(self.additional_ke, start=1):
            words += [f"ke{n}_{_keyword_for(KE, g)}" for g in groups]
        return "-".join(words)


@dataclass(frozen=True)
class EspProposal(_PreferredCipher):
    """An ESP proposal (alternatives first-preferred; one of each once chosen).

    `ke_groups` are the PFS groups for CREATE_CHILD_SA (empty: no PFS; `KeId.NONE` among
    them: PFS optional). `esns` lists `EsnId` values (default: no ESN).
    """

    encryption: tuple[tuple[EncrId, int], ...]
    integrities: tuple[IntegId, ...]
    ke_groups: tuple[KeId, ...] = ()
    esns: tuple[EsnId, ...] = (EsnId.NO_ESN,)

    @property
    def ke_group(self) -> KeId | None:
        """The PFS group to use, or None without PFS."""
        if not self.ke_groups or self.ke_groups[0] == KeId.NONE:
            return None
        return self.ke_groups[0]

    @property
    def esn(self) -> bool:
        return self.esns[0] == EsnId.ESN

    def to_payload(self, number: int, spi: bytes, with_ke: bool = True) -> Proposal:
        """SA payload proposal with our 4-byte inbound SPI. `with_ke=False` leaves out the
        KE transforms, as for the Child SA created in IKE_AUTH (RFC 7296 §1.2)."""
        if len(spi) != 4:
            raise ValueError(f"an ESP SPI is 4 bytes, got {len(spi)}")
        transforms = [_encr_transform(e, bits) for e, bits in self.encryption]
        transforms += [Transform(TransformType.INTEG, i) for i in self.integrities]
        if with_ke:
            transforms += [Transform(TransformType.KE, g) for g in self.ke_groups]
        transforms += [Transform(TransformType.ESN, e) for e in self.esns]
        return Proposal(number, ProtocolId.ESP, bytes(spi), transforms)

    def __str__(self) -> str:
        words = [_keyword_for(ENCR, e, bits) for e, bits in self.encryption]
        words += [_keyword_for(INTEG, i) for i in self.integrities]
        words += [_keyword_for(KE, g) for g in self.ke_groups]
        words += [_keyword_for(ESN, e) for e in self.esns]
        return "-".join(words)


def _encr_transform(encr_id: int, key_bits: int) -> Transform:
    # RFC 7634 §4 forbids the Key Length attribute for ChaCha20-Poly1305, and fixed-length
    # 3DES has none (RFC 7296 §3.3.5); AES needs it.
    key_length = None if encr_id in _FIXED_KEY_ENCR else key_bits
    return Transform(TransformType.ENCR, encr_id, key_length)


# --------------------------------------------------------------------------------------------
# Parsing


@dataclass
class _Parsed:
    """Algorithms of one proposal string, in the order written, duplicates dropped."""

    text: str
    encryption: list = field(default_factory=list)
    prfs: list = field(default_factory=list)
    integrities: list = field(default_factory=list)
    ke_groups: list = field(default_factory=list)
    additional_ke: list = field(default_factory=lambda: [[] for _ in _ADDKE_TYPES])
    esns: list = field(default_factory=list)
    integ_tokens: list = field(default_factory=list)
    first_aead: str | None = None
    first_classic: str | None = None

    @staticmethod
    def add(values: list, value) -> None:
        if value not in values:
            values.append(value)


def _lookup(token: str, text: str) -> tuple[str, int, int | None]:
    if token in _KEYWORDS:
        return _KEYWORDS[token]
    if token == _DEFAULT_KEYWORD:
        raise ProposalError(
            f"'default' in proposal '{text}' stands for the default proposals and must stand "
            "alone between commas (e.g. 'aes256gcm16-prfsha384-x25519,default')",
            token,
        )
    if token in _UNSAFE:
        raise ProposalError(
            f"algorithm '{token}' in proposal '{text}' is unsafe ({_UNSAFE[token]}) "
            "and not accepted",
            token,
        )
    if token in _UNSUPPORTED:
        raise ProposalError(
            f"algorithm '{token}' in proposal '{text}' is not supported by Cygnet", token
        )
    raise ProposalError(f"unknown algorithm '{token}' in proposal '{text}'", token)


def _parse_one(text: str, protocol: str) -> _Parsed:
    parsed = _Parsed(text)
    if not text:
        raise ProposalError("empty proposal in the list (two commas in a row, or a comma at an end)")
    tokens = [t.strip() for t in text.split("-")]  # strongSwan trims blanks around tokens
    if any(not t for t in tokens):
        raise ProposalError(f"empty algorithm name in proposal '{text}'")
    for token in tokens:
        word = token.lower()
        addke_index = None
        if len(word) > 4 and word[:2] == "ke" and word[2].isdigit() and word[3] == "_":
            # ke1_mlkem768 … ke7_none: RFC 9370 additional key exchanges
            addke_index = int(word[2]) - 1
            if not 0 <= addke_index < len(_ADDKE_TYPES):
                raise ProposalError(
                    f"'{token}' in proposal '{text}': additional key exchanges are "
                    "numbered ke1_ to ke7_",
                    token,
                )
            word = word[4:]
        kind, alg_id, key_bits = _lookup(word, text)
        if addke_index is not None:
            if kind != KE:
                raise ProposalError(
                    f"'{token}' in proposal '{text}': '{word}' is not a key exchange method",
                    token,
                )
            if protocol != "IKE":
                raise ProposalError(
                    f"'{token}' in proposal '{text}': additional key exchanges are only "
                    "supported in IKE proposals",
                    token,
                )
            parsed.add(parsed.additional_ke[addke_index], alg_id)
        elif kind == ENCR:
            parsed.add(parsed.encryption, (alg_id, key_bits))
            if alg_id in _AEAD:
                parsed.first_aead = parsed.first_aead or token
            else:
                parsed.first_classic = parsed.first_classic or token
        elif kind == INTEG:
            parsed.add(parsed.integrities, alg_id)
            parsed.integ_tokens.append(token)
        elif kind == PRF:
            # strongSwan drops PRFs from ESP proposals (proposal.c, check_proposal).
            if protocol == "IKE":
                parsed.add(parsed.prfs, alg_id)
        elif kind == KE:
            parsed.add(parsed.ke_groups, alg_id)
        elif protocol == "ESP":  # ESN; in IKE proposals accepted and dropped (module doc)
            parsed.add(parsed.esns, alg_id)
    _check_encryption(parsed, protocol)
    return parsed


def _check_encryption(parsed: _Parsed, protocol: str) -> None:
    text = parsed.text
    if not parsed.encryption:
        raise ProposalError(f"{protocol} proposal '{text}' has no encryption algorithm")
    if parsed.first_aead and parsed.first_classic:
        raise ProposalError(
            f"{protocol} proposal '{text}' mixes AEAD '{parsed.first_aead}' with non-AEAD "
            f"'{parsed.first_classic}'; put them in separate proposals"
        )
    if parsed.first_classic and not parsed.integrities:
        raise ProposalError(
            f"{protocol} proposal '{text}' needs an integrity algorithm (e.g. sha256) "
            f"for non-AEAD '{parsed.first_classic}'"
        )


def _split(text: str | Iterable[str]) -> list[str]:
    if not isinstance(text, str):
        text = ",".join(text)
    parts = [part.strip() for part in text.split(",")]
    if not any(parts):
        raise ProposalError("no proposal given")
    return parts


def parse_ike_proposals(text: str | Iterable[str]) -> list[IkeProposal]:
    """Parse comma-separated IKE proposals (a list of strings is joined with commas)."""
    proposals = []
    for part in _split(text):
        if part.lower() == _DEFAULT_KEYWORD:
            proposals += parse_ike_proposals(DEFAULT_IKE)
            continue
        parsed = _parse_one(part, "IKE")
        prfs = parsed.prfs
        integrities = parsed.integrities
        if not prfs:
            # strongSwan: without an explicit PRF, each integrity keyword also names the PRF
            # of the same hash (e.g. aes256gcm16-sha384 means PRF-HMAC-SHA384).
            prfs = [_PRF_FOR_INTEG[i] for i in integrities]
        if parsed.first_aead:
            # strongSwan drops integrity algorithms beside AEAD ciphers (RFC 5282 §8: an
            # AEAD proposal carries none).
            integrities = []
        if not prfs:
            raise ProposalError(f"IKE proposal '{part}' needs a PRF (e.g. prfsha256)")
        ke_groups = [g for g in parsed.ke_groups if g != KeId.NONE]
        if not ke_groups:
            raise ProposalError(
                f"IKE proposal '{part}' needs a key exchange method (e.g. x25519)"
            )
        additional = [tuple(groups) for groups in parsed.additional_ke]
        while additional and not additional[-1]:
            additional.pop()
        proposals.append(
            IkeProposal(
                encryption=tuple(parsed.encryption),
                prfs=tuple(prfs),
                integrities=tuple(integrities),
                ke_groups=tuple(ke_groups),
                additional_ke=tuple(additional),
            )
        )
    return proposals


def parse_esp_proposals(text: str | Iterable[str]) -> list[EspProposal]:
    """Parse comma-separated ESP proposals; key exchange methods in them request PFS."""
    proposals = []
    for part in _split(text):
        if part.lower() == _DEFAULT_KEYWORD:
            proposals += parse_esp_proposals(DEFAULT_ESP)
            continue
        parsed = _parse_one(part, "ESP")
        proposals.append(
            EspProposal(
                encryption=tuple(parsed.encryption),
                # As in IKE, integrity beside AEAD is dropped (strongSwan's check_proposal).
                integrities=() if parsed.first_aead else tuple(parsed.integrities),
                ke_groups=tuple(parsed.ke_groups),
                esns=tuple(parsed.esns) or (EsnId.NO_ESN,),
            )
        )
    return proposals


def legacy_warnings(proposals: Iterable[IkeProposal | EspProposal]) -> list[str]:
    """One line per legacy algorithm family in each of `proposals` (as parsed from a profile),
    naming the proposal, the family and its risk; empty when there is none."""
    lines = []
    for proposal in proposals:
        kind_ids = [(ENCR, e) for e, _ in proposal.encryption]
        kind_ids += [(INTEG, i) for i in proposal.integrities]
        kind_ids += [(PRF, p) for p in getattr(proposal, "prfs", ())]
        families = dict.fromkeys(_LEGACY[k] for k in kind_ids if k in _LEGACY)
        lines += [f"proposal '{proposal}' uses legacy {family}: {_LEGACY_RISKS[family]}"
                  for family in families]
    return lines


def proposal_warnings(ike: str | None, esp: str | None) -> list[str]:
    """`legacy_warnings` of a profile's `ike` and `esp` strings (None: the defaults, which
    hold no legacy algorithm). Raises ProposalError if a string does not parse."""
    proposals: list = parse_ike_proposals(ike) if ike else []
    proposals += parse_esp_proposals(esp) if esp else []
    return legacy_warnings(proposals)


# --------------------------------------------------------------------------------------------
# Reading SA payload proposals


def _transforms_by_type(proposal: Proposal) -> dict[int, list[Transform]]:
    by_type: dict[int, list[Transform]] = {}
    for transform in proposal.transforms:
        if transform.extra_attributes:
            # RFC 7296 §3.3.6: a transform with an unknown attribute is unacceptable.
            raise ProposalError(
                f"proposal {proposal.number} has a {_type_name(transform.type)} transform "
                "with an unknown attribute"
            )
        by_type.setdefault(int(transform.type), []).append(transform)
    return by_type


def _type_name(transform_type: int) -> str:
    try:
        return TransformType(transform_type).name
    except ValueError:
        return f"type {transform_type}"


def _encryption_of(transform: Transform) -> tuple[int, int | None]:
    encr_id, key_length = transform.id, transform.key_length
    fixed = _FIXED_KEY_ENCR.get(encr_id)
    if fixed is not None and key_length in (None, fixed):
        return encr_id, fixed
    return encr_id, key_length


def _single(by_type: dict[int, list[Transform]], transform_type: int, number: int):
    """The one transform of a type in a chosen proposal (RFC 7296 §3.3: one per type)."""
    transforms = by_type.get(int(transform_type), [])
    if len(transforms) > 1:
        raise ProposalError(
            f"the responder's proposal {number} has {len(transforms)} "
            f"{_type_name(transform_type)} transforms; a choice has exactly one"
        )
    return transforms[0] if transforms else None


class Selection(NamedTuple):
    """What a responder selected: the concrete proposal, and the number and SPI of the
    initiator's proposal it came from (the reply reuses the number, RFC 7296 §3.3.1)."""

    proposal: IkeProposal | EspProposal
    number: int
    spi: bytes


def _received_one(received_sa: SA, protocol: ProtocolId) -> Proposal:
    if len(received_sa.proposals) != 1:
        raise ProposalError(
            f"the responder's SA payload holds {len(received_sa.proposals)} proposals; "
            "exactly one is expected"
        )
    proposal = received_sa.proposals[0]
    if proposal.protocol != protocol:
        raise ProposalError(
            f"the responder chose a proposal for protocol {_protocol_name(proposal.protocol)}, "
            f"not {protocol.name}"
        )
    return proposal


def _protocol_name(protocol: int) -> str:
    try:
        return ProtocolId(protocol).name
    except ValueError:
        return str(protocol)


def _offered_by_number(offered: Sequence, number: int):
    if not 1 <= number <= len(offered):
        raise ProposalError(
            f"the responder chose proposal number {number}, but {len(offered)} were offered"
        )
    return offered[number - 1]


def _chosen_ike(received: Proposal, offered: IkeProposal) -> IkeProposal:
    """Check that the responder's single choice is one of the alternatives in `offered`."""
    number = received.number
    by_type = _transforms_by_type(received)
    unexpected = set(by_type) - {
        TransformType.ENCR, TransformType.PRF, TransformType.INTEG, TransformType.KE,
        *_ADDKE_TYPES,
    }
    if unexpected:
        raise ProposalError(
            f"the responder's IKE proposal contains {_type_name(min(unexpected))} transforms"
        )

    def pick(transform_type, allowed, what, convert=lambda t: t.id, optional=False):
        transform = _single(by_type, transform_type, number)
        if transform is None:
            if optional:
                return None
            raise ProposalError(f"the responder's IKE proposal has no {what}")
        value = convert(transform)
        if value not in allowed:
            raise ProposalError(f"the responder chose {what} {_describe(value)}, which was not offered")
        return value

    encryption = pick(TransformType.ENCR, offered.encryption, "encryption algorithm", _encryption_of)
    prf = pick(TransformType.PRF, offered.prfs, "PRF")
    integ = pick(TransformType.INTEG, (*offered.integrities, IntegId.NONE), "integrity algorithm",
                 optional=True)
    if integ == IntegId.NONE:
        integ = None
    if offered.integrities and integ is None:
        raise ProposalError("the responder's IKE proposal has no integrity algorithm")
    ke = pick(TransformType.KE, offered.ke_groups, "key exchange method")
    additional = []
    for index, addke_type in enumerate(_ADDKE_TYPES):
        allowed = offered.additional_ke[index] if index < len(offered.additional_ke) else ()
        chosen = pick(addke_type, allowed, f"additional key exchange {index + 1}", optional=True)
        if chosen is None:
            if allowed and KeId.NONE not in allowed:
                raise ProposalError(
                    f"the responder skipped additional key exchange {index + 1}, which is required"
                )
            chosen = KeId.NONE
        additional.append((chosen,))
    while additional and additional[-1] == (KeId.NONE,):
        additional.pop()
    return IkeProposal(
        encryption=(encryption,),
        prfs=(prf,),
        integrities=() if integ is None else (integ,),
        ke_groups=(ke,),
        additional_ke=tuple(additional),
    )


def _describe(value) -> str:
    if isinstance(value, tuple):
        encr_id, bits = value
        return f"{getattr(encr_id, 'name', encr_id)} ({bits}-bit)" if bits else str(encr_id)
    return getattr(value, "name", str(value))


def choose_ike(offered: Sequence[IkeProposal], received_sa: SA) -> IkeProposal:
    """Validate the responder's IKE_SA_INIT (or rekey) SA payload against what we offered
    (`offered[n-1]` is our proposal number n) and return the concrete choice."""
    received = _received_one(received_sa, ProtocolId.IKE)
    return _chosen_ike(received, _offered_by_number(offered, received.number))


def _chosen_esp(received: Proposal, offered: EspProposal, with_ke: bool) -> EspProposal:
    number = received.number
    by_type = _transforms_by_type(received)
    unexpected = set(by_type) - {
        TransformType.ENCR, TransformType.INTEG, TransformType.KE, TransformType.ESN
    }
    if unexpected:
        raise ProposalError(
            f"the responder's ESP proposal contains {_type_name(min(unexpected))} transforms"
        )
    if len(received.spi) != 4:
        raise ProposalError(f"the responder's ESP SPI is {len(received.spi)} bytes, not 4")

    def get(transform_type):
        return _single(by_type, transform_type, number)

    encr_t = get(TransformType.ENCR)
    if encr_t is None:
        raise ProposalError("the responder's ESP proposal has no encryption algorithm")
    encryption = _encryption_of(encr_t)
    if encryption not in offered.encryption:
        raise ProposalError(
            f"the responder chose encryption algorithm {_describe(encryption)}, which was not offered"
        )
    integ_t = get(TransformType.INTEG)
    integ = None if integ_t is None or integ_t.id == IntegId.NONE else integ_t.id
    if integ not in (offered.integrities or (None,)):
        what = "no integrity algorithm" if integ is None else f"integrity algorithm {_describe(integ)}"
        raise ProposalError(f"the responder chose {what}, which was not offered")
    ke_t = get(TransformType.KE)
    ke = KeId.NONE if ke_t is None else ke_t.id
    offered_ke = offered.ke_groups if with_ke else ()
    if ke != KeId.NONE and ke not in offered_ke:
        raise ProposalError(f"the responder chose PFS group {_describe(ke)}, which was not offered")
    if ke == KeId.NONE and offered_ke and KeId.NONE not in offered_ke:
        raise ProposalError("the responder declined PFS, which our proposal requires")
    esn_t = get(TransformType.ESN)
    esn = EsnId.NO_ESN if esn_t is None else esn_t.id
    if esn not in offered.esns:
        raise ProposalError(f"the responder chose {_describe(esn)}, which was not offered")
    return EspProposal(
        encryption=(encryption,),
        integrities=() if integ is None else (integ,),
        ke_groups=() if ke == KeId.NONE else (ke,),
        esns=(esn,),
    )


def choose_esp(offered: Sequence[EspProposal], received_sa: SA, with_ke: bool = True) -> EspProposal:
    """Validate the responder's Child SA choice; pass the same `with_ke` used in
    `to_payload` (False in IKE_AUTH). The responder's SPI is `received_sa.proposals[0].spi`."""
    received = _received_one(received_sa, ProtocolId.ESP)
    return _chosen_esp(received, _offered_by_number(offered, received.number), with_ke)


# --------------------------------------------------------------------------------------------
# Responder-side selection


def _first_common(preferred: Sequence, available: Sequence):
    for value in preferred:
        if value in available:
            return value
    return None


def _received_ike(received: Proposal) -> IkeProposal | None:
    """The received proposal as an IkeProposal, or None if it holds nothing we can use."""
    try:
        by_type = _transforms_by_type(received)
    except ProposalError:
        return None
    ids = lambda t: tuple(x.id for x in by_type.get(int(t), ()))  # noqa: E731
    return IkeProposal(
        encryption=tuple(_encryption_of(t) for t in by_type.get(int(TransformType.ENCR), ())),
        prfs=ids(TransformType.PRF),
        integrities=tuple(i for i in ids(TransformType.INTEG) if i != IntegId.NONE),
        ke_groups=ids(TransformType.KE),
        additional_ke=tuple(ids(t) for t in _ADDKE_TYPES),
    )


def _match_ike(mine: IkeProposal, theirs: IkeProposal, preferred_ke) -> IkeProposal | None:
    encryption = _first_common(mine.encryption, theirs.encryption)
    prf = _first_common(mine.prfs, theirs.prfs)
    ke_order = ((preferred_ke,) if preferred_ke in mine.ke_groups else ()) + mine.ke_groups
    ke = _first_common(ke_order, theirs.ke_groups)
    if encryption is None or prf is None or ke is None:
        return None
    integrities: tuple = ()
    if encryption[0] not in _AEAD:
        integ = _first_common(mine.integrities, theirs.integrities)
        if integ is None:
            return None
        integrities = (integ,)
    additional = []
    for index in range(len(_ADDKE_TYPES)):
        my_groups = mine.additional_ke[index] if index < len(mine.additional_ke) else ()
        their_groups = theirs.additional_ke[index] if index < len(theirs.additional_ke) else ()
        # An absent list behaves like NONE: no additional exchange of that number.
        chosen = _first_common(my_groups or (KeId.NONE,), their_groups or (KeId.NONE,))
        if chosen is None:
            return None
        additional.append((chosen,))
    while additional and additional[-1] == (KeId.NONE,):
        additional.pop()
    return IkeProposal((encryption,), (prf,), integrities, (ke,), tuple(additional))


def select_ike(
    configured: Sequence[IkeProposal], received_sa: SA, preferred_ke: int | None = None
) -> Selection:
    """Responder: pick the first configured proposal (our preference order, like strongSwan's
    default) that a received proposal can satisfy. `preferred_ke` — the group of the
    initiator's KE payload — wins among acceptable groups, avoiding INVALID_KE_PAYLOAD.
    Raises ProposalError (answer NO_PROPOSAL_CHOSEN) when nothing matches."""
    for mine in configured:
        for received in received_sa.proposals:
            if received.protocol != ProtocolId.IKE:
                continue
            theirs = _received_ike(received)
            chosen = theirs and _match_ike(mine, theirs, preferred_ke)
            if chosen:
                return Selection(chosen, received.number, received.spi)
    raise ProposalError("no acceptable IKE proposal")


def select_esp(
    configured: Sequence[EspProposal], received_sa: SA, with_ke: bool = True
) -> Selection:
    """Responder: like `select_ike` for Child SAs. With `with_ke=False` (IKE_AUTH) KE
    transforms are ignored on both sides."""
    for mine in configured:
        for received in received_sa.proposals:
            if received.protocol != ProtocolId.ESP or len(received.spi) != 4:
                continue
            try:
                by_type = _transforms_by_type(received)
            except ProposalError:
                continue
            ids = lambda t: tuple(x.id for x in by_type.get(int(t), ()))  # noqa: E731
            encryption = _first_common(
                mine.encryption,
                tuple(_encryption_of(t) for t in by_type.get(int(TransformType.ENCR), ())),
            )
            if encryption is None:
                continue
            integrities: tuple = ()
            if encryption[0] not in _AEAD:
                integ = _first_common(mine.integrities, ids(TransformType.INTEG))
                if integ is None:
                    continue
                integrities = (integ,)
            ke_groups: tuple = ()
            if with_ke:
                ke = _first_common(mine.ke_groups or (KeId.NONE,), ids(TransformType.KE) or (KeId.NONE,))
                if ke is None:
                    continue
                ke_groups = () if ke == KeId.NONE else (ke,)
            esn = _first_common(mine.esns, ids(TransformType.ESN) or (EsnId.NO_ESN,))
            if esn is None:
                continue
            chosen = EspProposal((encryption,), integrities, ke_groups, (esn,))
            return Selection(chosen, received.number, received.spi)
    raise ProposalError("no acceptable ESP proposal")
