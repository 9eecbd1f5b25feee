"""Stamps from another host's clock, told apart from slow or bursty senders."""

import numpy as np

from video2act_core.clock_offset import CLOCKS_HINT, ClockOffsets


def fill(offsets, source, ages, start_s=100.0):
    for k, age in enumerate(ages):
        received = start_s + 0.02 * k
        offsets.record(source, received, received - age)


def test_a_consistent_offset_beyond_the_limits_names_the_clocks():
    offsets = ClockOffsets(window=50)
    rng = np.random.default_rng(0)
    fill(offsets, "joint_states", 2.3 + rng.normal(0, 0.002, 50))  # a host 2.3 s behind
    fill(offsets, "camera", -0.8 + rng.normal(0, 0.002, 50))  # a host 0.8 s ahead
    behind = offsets.problem("joint_states", max_lead_s=0.1, max_age_s=0.5)
    assert "2.30 s behind" in behind and CLOCKS_HINT in behind
    assert "0.80 s ahead of" in offsets.problem("camera", max_lead_s=0.1, max_age_s=0.5)


def test_fresh_inputs_slow_senders_and_too_few_messages_are_no_clock_problem():
    offsets = ClockOffsets(window=50)
    rng = np.random.default_rng(1)
    fill(offsets, "fresh", rng.uniform(0.0, 0.01, 50))
    fill(offsets, "bursty", rng.uniform(0.2, 2.0, 50))  # a sender that stalls now and then
    fill(offsets, "few", np.full(10, 5.0))
    assert offsets.problem("fresh", 0.1, 0.5) == ""
    assert offsets.problem("bursty", 0.1, 0.5) == ""
    assert offsets.problem("few", 0.1, 0.5) == "" and offsets.offset("few") is None
    assert offsets.offset("fresh")[0] < 0.01
