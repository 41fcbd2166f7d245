"""Shared pytest fixtures. The strongSwan testbed is imported lazily: unit tests never pay for it.

Fixtures for interop tests (see testbed/README.md):
  pki              session-scoped throw-away PKI (CAs, gateway and client certificates)
  testbed_factory  make_testbed(**Testbed kwargs) -> started Testbed, closed after the test
  testbed          a started Testbed with the default gateway, no NAT
They skip the test (with the reason) when not root or strongSwan is missing. On failure the
testbed's packet captures and charon logs are copied to tests/artifacts/<test id>/.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"
INTEROP_DIR = Path(__file__).resolve().parent / "interop"


def pytest_collection_modifyitems(config, items):
    # Everything under tests/interop talks to real strongSwan: mark it so `-m 'not interop'`
    # selects the pure unit tests even if a module forgets its marker.
    for item in items:
        if INTEROP_DIR in Path(item.path).resolve().parents:
            item.add_marker(pytest.mark.interop)


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    # Remember each phase's report on the item so fixtures can tell whether the test failed.
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"_testbed_report_{report.when}", report)


def _test_failed(node) -> bool:
    return any(getattr(getattr(node, f"_testbed_report_{phase}", None), "failed", False)
               for phase in ("setup", "call"))


def _skip_unless_testbed_can_run() -> None:
    from testbed import missing_requirements

    reasons = missing_requirements()
    if reasons:
        pytest.skip("strongSwan testbed unavailable: " + "; ".join(reasons))


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """The test PKI, made once per session (or reused from $CYGNET_TESTBED_PKI_DIR)."""
    _skip_unless_testbed_can_run()
    from testbed import Pki

    directory = os.environ.get("CYGNET_TESTBED_PKI_DIR") or tmp_path_factory.mktemp("pki")
    return Pki.load_or_create(directory)


@pytest.fixture
def testbed_factory(pki, request):
    """make_testbed(nat=..., gateway_options=..., capture=True, ...) -> started Testbed."""
    from testbed import Testbed

    made = []

    def make_testbed(**kwargs):
        kwargs.setdefault("capture", True)
        testbed = Testbed(pki, **kwargs)
        made.append(testbed)          # before start(): a half-built testbed is closed too
        return testbed.start()

    yield make_testbed
    failed = _test_failed(request.node)
    for testbed in made:
        try:
            if failed:
                name = re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)
                testbed.save_artifacts(ARTIFACTS_DIR / name / testbed.topology.prefix)
        finally:
            testbed.close()


@pytest.fixture
def testbed(testbed_factory):
    """A started Testbed: default gateway options, no NAT, captures on."""
    return testbed_factory()
