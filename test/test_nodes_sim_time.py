"""The nodes under use_sim_time, with a /clock a day behind wall time."""

import time

import pytest

from dds_harness import MAX_LATENTS_AGE_S, run_stack, wait_ready
from video2act_core.messages import stamp_to_seconds
from video2act_msgs.msg import ActionChunk

pytestmark = pytest.mark.dds


@pytest.fixture
def sim_time_stack(tiny_checkpoint, tmp_path):
    # A sim clock a day behind wall time: any use of the wall clock for
    # stamps or ages would show up as huge or negative ages.
    yield from run_stack(tiny_checkpoint, tmp_path, sim_time_start_s=time.time() - 86400.0)


def test_use_sim_time_stamps_and_ages_follow_clock(sim_time_stack):
    harness, processes, logs = sim_time_stack
    wait_ready(harness, processes, logs)
    harness.clear()
    window_s = 4.0
    harness.run(window_s)
    sim_now = harness.now().nanoseconds * 1e-9
    assert harness.latents
    for msg in harness.latents:
        assert 0 <= sim_now - stamp_to_seconds(msg.header.stamp) < MAX_LATENTS_AGE_S + 1
        assert 0 <= msg.latency < MAX_LATENTS_AGE_S
    active = [c for c in harness.chunks if c.mode == ActionChunk.MODE_ACTIVE]
    assert active and all(0 <= c.latents_age < MAX_LATENTS_AGE_S for c in active)
    # Chunks are stamped with the sim time of the joint state they used.
    assert all(0 <= sim_now - stamp_to_seconds(c.header.stamp) < window_s + 1.0 for c in active)
