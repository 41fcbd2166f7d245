"""Render nested dicts as strongSwan's settings syntax (swanctl.conf, strongswan.conf).

    {"connections": {"psk": {"version": 2, "proposals": ["aes128gcm16-prfsha256-x25519"]}}}
becomes
    connections {
      psk {
        version = 2
        proposals = aes128gcm16-prfsha256-x25519
      }
    }
Lists become comma-separated values, booleans yes/no, None drops the key.
"""

from __future__ import annotations

import os
from pathlib import Path


def render(tree: dict, indent: int = 0) -> str:
    lines = []
    pad = "  " * indent
    for key, value in tree.items():
        if value is None:
            continue
        if isinstance(value, dict):
            lines.append(f"{pad}{key} {{")
            lines.append(render(value, indent + 1))
            lines.append(f"{pad}}}")
        else:
            lines.append(f"{pad}{key} = {_scalar(value)}")
    return "\n".join(line for line in lines if line)


def _scalar(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(_scalar(v) for v in value)
    text = str(value)
    if any(c in text for c in "\n{}#\""):
        raise ValueError(f"value cannot be written to a strongSwan config: {text!r}")
    if text != text.strip() or text == "":
        return f'"{text}"'
    return text


def swanctl_secret(secret: str) -> str:
    """A secret as a swanctl.conf value: hex ("0x...") so any character is safe."""
    return "0x" + secret.encode().hex()


def merge_settings(base: dict, extra: dict) -> None:
    """Merge `extra` into `base` in place; nested dicts merge, other values replace."""
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge_settings(base[key], value)
        else:
            base[key] = value


def write_private(path: Path, text: str) -> None:
    """Write a file readable by root only (it may hold PSKs, passwords, key paths)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")
    os.chmod(path, 0o600)  # in case the file already existed with looser bits
