"""Typed errors that name the key at fault, in the words of the form it came from."""

from __future__ import annotations

from typing import Optional


class FieldError(ValueError):
    """One value is wrong. `.key` is the key in the form being read (a TOML key, a vpn.data
    key or a dotted .sswan field), `.problem` the complaint alone, `.kind` a short machine
    word (``range``, ``missing``, ``type``, ``choice``, ``network``, ``host``, ``proposal``,
    ``file``, ``combination``, ``unknown``, ``unsupported``, ``format``) and `.limit` the
    `limits.Limit` broken by a ``range`` error. str() is the full message."""

    def __init__(self, message: str, key: Optional[str] = None, problem: Optional[str] = None,
                 kind: str = "", limit=None):
        super().__init__(message)
        self.key = key
        self.problem = problem
        self.kind = kind
        self.limit = limit


class ProfileError(FieldError):
    """A TOML profile cannot be found or is wrong; the message says which file and key."""


class VpnDataError(FieldError):
    """A NetworkManager connection cannot be used; the message names the vpn.data key."""


class SswanError(FieldError):
    """A .sswan file cannot be used; the message names the file and the field."""


class ConversionError(FieldError):
    """A connection cannot be moved to another form (e.g. a PSK connection to .sswan)."""
