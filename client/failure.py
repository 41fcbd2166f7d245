"""Why a tunnel failed, as data: a `Failure` is a `FailureKind` and a message for people.

The kind is decided once, where the cause is known (a typed ike.events event, a failed name
lookup, a gateway that never answered, a local set-up step), and every surface maps it by a
table, never by reading the message:

    ike.events ──> client.engine (Failure) ──> cygnet up: exit status (EXIT_CODES)
                                          └──> nm_plugin: NM's Failure(u) (service.py's
                                               NM_FAILURE), and the kind's token (FailureKind
                                               value) in the plugin's Failed(u, s, s) signal
                                               ──> gui/failures.py: the tray's text (by token)

The tokens (the enum values) are the contract across processes: never rename one.
The kinds themselves live in connection_schema.failure_kinds (the tray reads them there);
no other imports beyond the standard library: `cygnet --help` loads this.
"""

from __future__ import annotations

# the kinds and their tokens are shared with the tray, which imports no client module
from connection_schema.failure_kinds import FailureKind, kind_from_token  # noqa: F401


class Failure:
    """A kind and a message for people. (A plain class: `cygnet --help` imports this module,
    and dataclasses would cost start-up time there.)"""

    __slots__ = ("kind", "message")

    def __init__(self, kind: FailureKind, message: str):
        self.kind = FailureKind(kind)
        self.message = message

    def __eq__(self, other) -> bool:
        return isinstance(other, Failure) and (self.kind, self.message) == (other.kind, other.message)

    def __hash__(self) -> int:
        return hash((self.kind, self.message))

    def __repr__(self) -> str:
        return f"Failure({self.kind.value!r}, {self.message!r})"

    def __str__(self) -> str:
        return self.message


class FatalError(Exception):
    """A problem retrying cannot fix (wrong credentials, no common proposal, bad setup)."""

    def __init__(self, message: str, kind: FailureKind = FailureKind.LOCAL_CONFIGURATION):
        super().__init__(message)
        self.failure = Failure(kind, message)


# `cygnet up` (in the foreground) exits with the kind's status: scripts can tell a wrong
# password from an unreachable gateway. 0 is "up, then closed", 2 bad arguments, 130 ^C.
# `cygnet up --daemon` exits 1 for every failure: its parent only waits for "up" or not.
EXIT_FAILED = 1
EXIT_CODES = {
    FailureKind.GATEWAY_UNREACHABLE: EXIT_FAILED,
    FailureKind.LOOKUP_FAILED: EXIT_FAILED,
    FailureKind.PROTOCOL_ERROR: EXIT_FAILED,
    FailureKind.TUNNEL_LOST: EXIT_FAILED,
    FailureKind.STOPPED: EXIT_FAILED,
    FailureKind.AUTHENTICATION: 3,
    FailureKind.IDENTITY_MISMATCH: 4,
    FailureKind.PROPOSAL_MISMATCH: 5,
    FailureKind.LOCAL_CONFIGURATION: 6,
    FailureKind.IP_CONFIGURATION: 6,
    FailureKind.PASSWORD_MISSING: 7,
    FailureKind.CERTIFICATE_UNAVAILABLE: 8,
}

EXIT_STATUS_HELP = """exit status of `cygnet up` in the foreground (why the tunnel failed):
  0    it was up, then closed
  1    could not connect, or tunnel lost (gateway unreachable, name lookup, protocol error)
  2    bad arguments
  3    authentication refused (wrong password, PSK or certificate)
  4    the gateway did not prove the identity or certificate expected
  5    no common IKE/ESP proposal
  6    local configuration (TUN device, data plane, addresses)
  7    password or PSK missing
  8    our certificate or key unavailable
  130  interrupted
`cygnet up --daemon` exits 0 once the tunnel is up and 1 if it did not come up."""


def exit_code(failure: Failure) -> int:
    return EXIT_CODES.get(failure.kind, EXIT_FAILED)


def from_event(event, context: str = "") -> Failure | None:
    """The failure an ike.events event reports, or None if it is not one. `context` is
    appended to authentication failures (the identities we used: the gateway says only
    AUTHENTICATION_FAILED)."""
    from ike import events as ev

    if isinstance(event, ev.AuthenticationFailed):
        kind = {ev.AUTH_GATEWAY: FailureKind.IDENTITY_MISMATCH,
                ev.AUTH_LOCAL: FailureKind.LOCAL_CONFIGURATION}.get(event.cause, FailureKind.AUTHENTICATION)
        return Failure(kind, f"authentication failed: {event.reason}" + (f" ({context})" if context else ""))
    if isinstance(event, ev.ProposalMismatch):
        return Failure(FailureKind.PROPOSAL_MISMATCH,
                       f"no proposal chosen: the gateway accepted none of {', '.join(event.offered)} "
                       f"({event.reason})")
    return None
