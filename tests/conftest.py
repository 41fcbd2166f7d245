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
TESTS_DIR = Path(__file__).resolve().parent
INTEROP_DIR = TESTS_DIR / "interop"
# Markers by what a test needs (registered in pyproject), so `make test-fast`
# (-m 'not interop and not netns and not vm and not nm') selects pure unit tests even if a
# module forgets its marker: by directory, and by the fixtures that build namespaces.
DIRECTORY_MARKERS = {
    INTEROP_DIR: ("interop", "netns"),
    TESTS_DIR / "kernel": ("vm", "netns"),
    TESTS_DIR / "gui": ("gui",),
}
FILE_MARKERS = {TESTS_DIR / "test_kernel_lane.py": ("vm", "netns", "interop")}
FIXTURE_MARKERS = {
    "testbed": ("interop", "netns"),
    "testbed_factory": ("interop", "netns"),
    "nm_testbed": ("nm", "interop", "netns"),
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        path = Path(item.path).resolve()
        names = set(FILE_MARKERS.get(path, ()))
        for directory, markers in DIRECTORY_MARKERS.items():
            if directory in path.parents:
                names.update(markers)
        for fixture in FIXTURE_MARKERS.keys() & set(getattr(item, "fixturenames", ())):
            names.update(FIXTURE_MARKERS[fixture])
        if "interop" in {mark.name for mark in item.iter_markers()}:
            names.add("netns")      # every interop test runs its peer in namespaces
        for name in sorted(names):
            item.add_marker(name)


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
