"""NAT detection hashes (RFC 7296 §2.23).

NAT_DETECTION_*_IP data = SHA-1(SPIi | SPIr | IP address | port). In the IKE_SA_INIT request
SPIr is still zero. A mismatch on the DESTINATION hash means our own address was translated;
on the SOURCE hash, the gateway's.
"""

from __future__ import annotations

import ipaddress

from cryptography.hazmat.primitives import hashes


def nat_detection_hash(spi_i: bytes, spi_r: bytes, address: str, port: int) -> bytes:
    digest = hashes.Hash(hashes.SHA1())
    digest.update(spi_i + spi_r)
    digest.update(ipaddress.ip_address(address).packed)
    digest.update(int(port).to_bytes(2, "big"))
    return digest.finalize()
