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


def import_without_system_openssl(*modules: str) -> None:
    """Import `modules` (asyncio, hashlib) with ssl and _hashlib hidden; a module imported
    before is left as it is."""
    import importlib

    hidden = [name for name in _HIDDEN if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # "import ssl" raises ImportError
    try:
        for module in modules:
            importlib.import_module(module)
    finally:
        for name in hidden:
            del sys.modules[name]
