"""A short smoke of the IKE fuzz targets (the long runs: `python -m tests.fuzz.run`):
every seed, then Hypothesis-generated inputs and seeds with bytes changed."""

from __future__ import annotations

import importlib

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

TARGETS = ("target_ike_decode", "target_ike_session", "target_esp_open")

pytestmark = pytest.mark.fast


def _target(name):
    return importlib.import_module(f"tests.fuzz.{name}")


@pytest.mark.parametrize("name", TARGETS)
def test_every_seed_runs(name):
    target = _target(name)
    assert target.SEEDS
    for seed in target.SEEDS:
        target.one_input(seed)


def _mutated(seeds):
    """A seed with a few bytes replaced, cut or extended."""
    @st.composite
    def build(draw):
        data = bytearray(draw(st.sampled_from(seeds)))
        for _ in range(draw(st.integers(0, 4))):
            if data:
                data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        if draw(st.booleans()):
            data = data[:draw(st.integers(0, len(data)))]
        return bytes(data + draw(st.binary(max_size=16)))
    return build()


@pytest.mark.parametrize("name", TARGETS)
def test_random_and_mutated_inputs(name):
    target = _target(name)

    @settings(max_examples=150, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(st.one_of(st.binary(max_size=512), _mutated(target.SEEDS)))
    def run(data):
        target.one_input(data)

    run()
