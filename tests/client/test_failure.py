"""Failures as data (client/failure.py): core events become kinds, kinds become exit statuses,
NetworkManager failure codes and tray texts by tables."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from client.failure import (EXIT_CODES, EXIT_FAILED, EXIT_STATUS_HELP, Failure, FailureKind,
                            FatalError, exit_code, from_event, kind_from_token)
from ike import events as ev

REPO = Path(__file__).resolve().parents[2]


def test_core_events_become_kinds():
    rejected = from_event(ev.AuthenticationFailed("wrong password (EAP-MSCHAPv2 error 691)"), "we are carol")
    assert rejected == Failure(FailureKind.AUTHENTICATION,
                               "authentication failed: wrong password (EAP-MSCHAPv2 error 691) (we are carol)")
    unproven = from_event(ev.AuthenticationFailed("not trusted", ev.AUTH_GATEWAY))
    assert unproven.kind is FailureKind.IDENTITY_MISMATCH
    assert from_event(ev.AuthenticationFailed("no key", ev.AUTH_LOCAL)).kind is FailureKind.LOCAL_CONFIGURATION
    mismatch = from_event(ev.ProposalMismatch(("aes128-sha256-modp2048",), "NO_PROPOSAL_CHOSEN"))
    assert mismatch.kind is FailureKind.PROPOSAL_MISMATCH
    assert mismatch.message.startswith("no proposal chosen: the gateway accepted none of aes128")
    assert from_event(ev.IkeSaDeleted("closed")) is None


def test_every_kind_has_an_exit_status_and_the_help_lists_them():
    assert set(EXIT_CODES) == set(FailureKind)
    assert exit_code(Failure(FailureKind.AUTHENTICATION, "x")) == 3
    assert exit_code(Failure(FailureKind.GATEWAY_UNREACHABLE, "x")) == EXIT_FAILED == 1
    assert len({EXIT_CODES[k] for k in (FailureKind.AUTHENTICATION, FailureKind.IDENTITY_MISMATCH,
                                        FailureKind.PROPOSAL_MISMATCH, FailureKind.PASSWORD_MISSING,
                                        FailureKind.CERTIFICATE_UNAVAILABLE)}) == 5
    for code in set(EXIT_CODES.values()):
        assert f"\n  {code} " in EXIT_STATUS_HELP
    result = subprocess.run([sys.executable, "-m", "client.cli", "--help"], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert "  3    authentication refused" in result.stdout


def test_tokens_cross_process_boundaries_unchanged():
    assert kind_from_token("authentication") is FailureKind.AUTHENTICATION
    assert kind_from_token("no-such-kind") is None
    assert FatalError("no TUN").failure.kind is FailureKind.LOCAL_CONFIGURATION


def test_networkmanager_failure_codes_by_kind():
    from nm_plugin.service import FAILURE_CONNECT, FAILURE_LOGIN, NM_FAILURE

    assert NM_FAILURE[FailureKind.AUTHENTICATION] == FAILURE_LOGIN
    assert NM_FAILURE.get(FailureKind.GATEWAY_UNREACHABLE, FAILURE_CONNECT) == FAILURE_CONNECT
