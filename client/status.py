"""The one status model: what `cygnet status` (and --json) shows, what the NetworkManager
plugin turns into NM's Config/Ip4Config/Ip6Config, and what the tray shows (through NM's
Config signal). No secrets.

`TunnelStatus` is kept up to date by the engine; `snapshot()` adds what is computed on
demand (the CHILD_SAs from the registry with the data plane's counters, uptime, deadlines)
and is the dict the control socket serves.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Optional


class Progress:
    """Progress lines for the user ("contacting …", "tunnel up"); also written to a pipe
    when `cygnet up --daemon` waits in the foreground for the tunnel, and to its log file
    (with the time) once it has detached."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self.timestamps = False

    def say(self, text: str) -> None:
        if self.timestamps:
            text = time.strftime("%Y-%m-%d %H:%M:%S ") + text
        try:
            print(text, file=self.stream, flush=True)
        except (OSError, ValueError):
            pass  # the terminal or the --daemon parent is gone: keep running


@dataclass
class TunnelStatus:
    """What `cygnet status` shows; no secrets."""

    name: str
    state: str = "connecting"
    gateway: str = ""
    local_id: str = ""
    remote_id: str = ""
    interface: str = ""
    dataplane: str = ""  # "kernel" (XFRM) or "userspace" (TUN + Python ESP)
    virtual_ips: list[str] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    domains: list[str] = field(default_factory=list)
    ike_proposal: str = ""
    ike_spi_i: str = ""
    ike_spi_r: str = ""
    nat: bool = False
    up_since: Optional[float] = None
    reconnects: int = 0  # how often the tunnel came back up after it was lost
    ike_rekeys: int = 0
    child_rekeys: int = 0
    reauths: int = 0  # make-before-break reauthentications (RFC 4478 / swanctl reauth_time)
    last_error: str = ""
    last_error_kind: str = ""  # client.failure.FailureKind value of last_error, if known
    kill_switch: bool = False  # client/killswitch.py
    blocked: list[str] = field(default_factory=list)  # families dropped outside the tunnel
    dns_mode: str = ""  # client/dns.py: how DNS follows the tunnel


def esp_algorithms(children: list[dict]) -> list[str]:
    """"AES_GCM_16-128" or "AES_CBC-128/AUTH_HMAC_SHA2_256_128" per distinct CHILD_SA suite."""
    return sorted({c["encryption"] + (f"/{c['integrity']}" if c["integrity"] else "") for c in children})


def snapshot(status: TunnelStatus, children: list, counters: dict, deadlines: tuple,
             session_now: float) -> dict:
    """The status model as a dict. children: client.children.ChildEntry in install order;
    counters: the data plane's, by spi_in; deadlines: (IKE rekey, reauthentication) on the
    session clock `session_now`, or Nones."""
    data = dict(status.__dict__)
    now = time.time()
    listed = []
    for child in children:
        entry = child.describe()
        c = counters.get(child.spi_in)
        if c is not None:
            entry.update(bytes_in=c.bytes_in, packets_in=c.packets_in, bytes_out=c.bytes_out,
                         packets_out=c.packets_out, replay_drops=c.replay_drops,
                         auth_failures=c.auth_failures)
        entry["rekey_in"] = max(0, round(child.rekey_at - now))
        listed.append(entry)
    data["children"] = listed
    data["uptime"] = round(now - status.up_since) if status.up_since else 0
    rekey_at, reauth_at = deadlines
    data["ike_rekey_in"] = None if rekey_at is None else max(0, round(rekey_at - session_now))
    data["reauth_in"] = None if reauth_at is None else max(0, round(reauth_at - session_now))
    return data
