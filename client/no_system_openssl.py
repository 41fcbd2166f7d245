"""Loading asyncio and hashlib without the system's OpenSSL.

cryptography carries its own OpenSSL. asyncio imports ssl (for TLS transports, which Cygnet
never opens) and hashlib imports _hashlib; each loads the system's libssl/libcrypto beside
cryptography's copy: about 4 MB resident and 8 ms at start-up, for nothing. With both hidden
while they load, asyncio treats TLS as unavailable and hashlib uses CPython's built-in hashes
(dbus-fast hashes introspection XML with SHA-256). Later importers of ssl get it as usual.
"""

from __future__ import annotations

import sys

_HIDDEN = ("ssl", "_hashlib")


def load_asyncio_and_hashlib() -> None:
    """Import asyncio and hashlib, unless already imported, without ssl and _hashlib."""
    hidden = [name for name in _HIDDEN if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # "import ssl" raises ImportError
    try:
        import asyncio  # noqa: F401
        import hashlib  # noqa: F401
    finally:
        for name in hidden:
            del sys.modules[name]
