"""The tray applet's secret agent answers for an encrypted private key (issue 19): its
passphrase is the connection's `password` secret, kept in the user's keyring like an EAP
password; real NetworkManager, the Cygnet plugin and the strongSwan gateway."""

from __future__ import annotations

import json

from tests.gui.test_applet_networkmanager import applet  # noqa: F401  (the fixture)
from tests.gui.test_applet_networkmanager import pytestmark  # noqa: F401
from tests.nm.conftest import nm_testbed  # noqa: F401
from tests.nm.test_networkmanager_plugin import vpn_data
from tests.nm.test_nm_encrypted_key import PASSPHRASE, encrypted_copy


def test_key_passphrase_from_the_keyring_through_the_agent(applet, tmp_path):  # noqa: F811
    testbed, nm, session, driver = applet
    data = vpn_data(testbed, "cert", userkey=str(encrypted_copy(testbed, tmp_path)))
    added = driver.ask("add " + json.dumps({"id": "office", "data": data}))
    stored = session.run(["secret-tool", "store", "--label=Cygnet office key", "service", "cygnet",
                          "username", f"nm-{added['uuid']}"], input=PASSPHRASE)
    assert stored.returncode == 0, stored.stderr
    assert nm.connection_fields("office")["vpn.data"][0].count("password-flags = 1") == 1

    driver.ask("trigger Connect office")
    driver.ask("wait office connected 60", timeout=70)
    assert driver.ask("agent") == {"requests": 1}
    assert testbed.gateway.wait_for_sa()["name"] == "pubkey"
    assert PASSPHRASE not in nm.log_path.read_text(errors="replace")
    assert PASSPHRASE not in driver.stderr()
