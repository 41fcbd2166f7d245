"""Test-only knobs, not settings: JSON in $CYGNET_TEST_HOOKS.

The interop tests use them to make what takes strongSwan's defaults minutes or hours happen
in seconds: giving up on a dead gateway (retransmissions end after 165 s), and rekeying that
we initiate (lifetimes, or the data plane's byte/packet limits). Nothing else in client/
reads the environment for behaviour; `cygnet up` applies these in client/commands.py.
"""

from __future__ import annotations

import json
import os

from client.failure import FatalError

TEST_HOOKS_VARIABLE = "CYGNET_TEST_HOOKS"
_LIFETIMES = ("ike_rekey_time", "ike_rand_time", "child_rekey_time", "child_rand_time",
              "child_life_time")
_RETRANSMIT = {"retransmit_tries": "tries", "retransmit_timeout": "timeout",
               "retransmit_base": "base"}
_LIMITS = {"esp_soft_bytes": "soft_bytes", "esp_hard_bytes": "hard_bytes",
           "esp_soft_packets": "soft_packets", "esp_hard_packets": "hard_packets"}


def test_only_hooks(environ=os.environ) -> tuple[dict, object]:
    """$CYGNET_TEST_HOOKS -> (ike.settings.Settings overrides, client.esp.SaLimits or None).

    Keys: retransmit_tries / retransmit_timeout / retransmit_base, ike_rekey_time,
    ike_rand_time, child_rekey_time, child_rand_time, child_life_time (seconds),
    esp_soft_bytes, esp_hard_bytes, esp_soft_packets, esp_hard_packets. Unknown keys are
    refused, so a typo cannot silently test the defaults.
    """
    text = environ.get(TEST_HOOKS_VARIABLE)
    if not text:
        return {}, None
    from client.esp import SaLimits
    from ike.retransmission import RetransmissionPolicy

    try:
        hooks = json.loads(text)
        if not isinstance(hooks, dict):
            raise ValueError("not a JSON object")
    except ValueError as error:
        raise FatalError(f"{TEST_HOOKS_VARIABLE}: {error}") from None
    unknown = set(hooks) - set(_LIFETIMES) - set(_RETRANSMIT) - set(_LIMITS)
    if unknown:
        raise FatalError(f"{TEST_HOOKS_VARIABLE}: unknown keys {', '.join(sorted(unknown))}")
    overrides = {name: float(hooks[name]) for name in _LIFETIMES if name in hooks}
    policy = {field: hooks[key] for key, field in _RETRANSMIT.items() if key in hooks}
    if policy:
        overrides["retransmission"] = RetransmissionPolicy(**policy)
    sa_limits = {field: int(hooks[key]) for key, field in _LIMITS.items() if key in hooks}
    return overrides, (SaLimits(**sa_limits) if sa_limits else None)


test_only_hooks.__test__ = False  # not a pytest test, whatever its name
