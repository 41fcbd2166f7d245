"""Comparing secrets and MACs in constant time.

``hmac.compare_digest`` would do, but importing hmac loads the system's OpenSSL (libcrypto,
about 4 MB resident) through ``_hashlib``, and nothing else in Cygnet needs it: cryptography
carries its own OpenSSL. ``_operator._compare_digest`` is the C function that hmac itself uses
when ``_hashlib`` is absent: its running time depends on the length of the inputs, never on
where they differ.
"""
from __future__ import annotations

from _operator import _compare_digest as bytes_equal

__all__ = ["bytes_equal"]
