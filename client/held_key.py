"""A private key held elsewhere (a PKCS#11 token, ssh-agent), as a stand-in that
cryptography's signing callers (ike/auth.py's Signer) accept: only `sign` reaches the holder,
everything else comes from the public key, and the private half can never be exported.

List `HeldKey` (or `HeldEcKey`) before cryptography's private-key class, so its methods are the
ones found; the subclass sets `_public` and names `_holder` for the refusal."""

from __future__ import annotations


class HeldKey:
    _holder = "with its holder"  # "on the token", "in ssh-agent": where the key stays

    def public_key(self):
        return self._public

    @property
    def key_size(self):
        return self._public.key_size

    def _no_export(self, *_args, **_kwargs):
        raise TypeError(f"the private key stays {self._holder}")

    decrypt = exchange = private_numbers = private_bytes = private_bytes_raw = _no_export

    # a copy would be the same handle to the same held key
    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self


class HeldEcKey(HeldKey):
    @property
    def curve(self):
        return self._public.curve
