"""IKE_INTERMEDIATE authentication data (RFC 9242 §3.3).

IKE_INTERMEDIATE messages are not covered by the AUTH of IKE_SA_INIT, so each side chains
a MAC over every one of them into the AUTH computation:

  IntAuth_i1 = prf(SK_pi1,              IntAuth_i1_A | IntAuth_i1_P)
  IntAuth_iN = prf(SK_piN, IntAuth_iN-1 | IntAuth_iN_A | IntAuth_iN_P)      (same for _r)
  IntAuth    = IntAuth_iN | IntAuth_rN | IKE_AUTH_MID

_A is the IKE header plus the Encrypted payload header with both lengths computed as if the
SK payload held only the plaintext inner payloads (no IV, padding or ICV), and no fragments
(§3.3.1); _P is that plaintext. SK_p* is the key that protected the exchange.
"""

from __future__ import annotations

import struct

from .constants import IKE_MAJOR_VERSION, IKE_MINOR_VERSION, PayloadType

IKE_HEADER_SIZE = 28
GENERIC_PAYLOAD_HEADER_SIZE = 4


def intermediate_auth_input(spi_i: bytes, spi_r: bytes, exchange: int, flags: int,
                            message_id: int, first_inner: int, inner: bytes) -> bytes:
    """IntAuth_*_A | IntAuth_*_P for one IKE_INTERMEDIATE message (request or response)."""
    sk_length = GENERIC_PAYLOAD_HEADER_SIZE + len(inner)
    header = (spi_i + spi_r
              + struct.pack("!BBBBII", PayloadType.SK,
                            (IKE_MAJOR_VERSION << 4) | IKE_MINOR_VERSION,
                            exchange, flags, message_id, IKE_HEADER_SIZE + sk_length))
    sk_header = struct.pack("!BBH", first_inner, 0, sk_length)
    return header + sk_header + inner


class IntermediateAuthChain:
    """Accumulates IntAuth_i and IntAuth_r across the IKE_INTERMEDIATE exchanges."""

    def __init__(self) -> None:
        self.initiator = b""
        self.responder = b""
        self.count = 0

    def add(self, prf, sk_pi: bytes, sk_pr: bytes, request_input: bytes,
            response_input: bytes) -> None:
        self.initiator = prf(sk_pi, self.initiator + request_input)
        self.responder = prf(sk_pr, self.responder + response_input)
        self.count += 1

    def auth_data(self, ike_auth_message_id: int) -> bytes:
        """IntAuth to append to both signed octets; empty if there was no IKE_INTERMEDIATE."""
        if not self.count:
            return b""
        return self.initiator + self.responder + struct.pack("!I", ike_auth_message_id)
