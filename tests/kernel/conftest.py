"""Fixtures for tests that need kernel ESP: they run inside the VM lane (tests/test_kernel_lane.py
boots Debian's kernel under qemu and runs this directory there) and skip anywhere the kernel
cannot install an ESP SA, such as the CI host itself.

The strongSwan gateway here uses kernel-netlink only (real kernel ESP, no libipsec): the
testbed's charon plugin list is narrowed for this directory's tests.
"""

from __future__ import annotations

import pytest

KERNEL_ESP_REASON = None


def kernel_esp_missing() -> str | None:
    """Why kernel ESP cannot be used here (None: it can). Probed once per session."""
    global KERNEL_ESP_REASON
    if KERNEL_ESP_REASON is None:
        from client.xfrm import probe_esp

        KERNEL_ESP_REASON = probe_esp() or ""
    return KERNEL_ESP_REASON or None


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/kernel/" in str(item.fspath):
            item.add_marker(pytest.mark.interop)


@pytest.fixture(scope="session", autouse=True)
def kernel_esp_gateway():
    """Skip without kernel ESP; make every testbed charon use kernel-netlink only."""
    reason = kernel_esp_missing()
    if reason:
        pytest.skip(f"kernel ESP unavailable ({reason}): these tests run in the VM lane "
                    "(tests/test_kernel_lane.py)")
    from testbed import charon

    patch = pytest.MonkeyPatch()
    patch.setattr(charon, "CHARON_PLUGINS", charon.CHARON_PLUGINS.replace("kernel-libipsec ", ""))
    yield
    patch.undo()
