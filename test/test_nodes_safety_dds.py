"""The policy against an adversarial publisher over real DDS: future stamps
then silence, out-of-limit and non-finite states, duplicate joint names,
disarming mid-motion, perception killed and restarted, and a clean stop.
Every command published is checked against the safety envelope when the
stack stops (dds_harness.run_stack)."""

import os
import signal
import time

import numpy as np
import pytest

from conftest import JOINTS, PARAMS_FILE
from dds_harness import ARM_JOINTS, LIMITS, MAX_LATENTS_AGE_S, PARAMS, run_stack, wait_ready
from video2act_eval.launcher import PERCEPTION, start_node
from video2act_msgs.msg import ActionChunk

pytestmark = pytest.mark.dds

ACTIVE, HOLD, DISARMED = ActionChunk.MODE_ACTIVE, ActionChunk.MODE_HOLD, ActionChunk.MODE_DISARMED


@pytest.fixture(scope="module")
def stack(tiny_checkpoint, tmp_path_factory):
    yield from run_stack(tiny_checkpoint, tmp_path_factory.mktemp("logs"))


def settle(harness, seconds=1.0):
    """Good inputs for a while, then forget what came back."""
    harness.run(seconds)
    harness.clear()


def test_a_future_stamp_then_silence_holds_within_the_staleness_limit(stack):
    harness, processes, logs = stack
    wait_ready(harness, processes, logs)
    settle(harness)
    harness.send_joint_state(stamp_offset_s=5.0)  # refused: from the future
    started = time.monotonic()
    harness.run(3.0, joint_states=False)
    late = [c for c in harness.chunks if harness.received_s[id(c)] > started + PARAMS.max_joint_state_age_s + 0.4]
    assert late and all(c.mode == HOLD and "joint state is" in c.reason for c in late), [c.reason for c in late]
    assert "in the future" in (logs / "policy_node.log").read_text()


@pytest.mark.parametrize(
    "position, reason",
    [
        (1e300, "outside the limits"),
        ([0.1, 0.1, 5.0, 0.1, 0.1, 0.1], "outside the limits for ['elbow_flex']"),
        (float("nan"), "joint state is"),  # refused on arrival: the last good one goes stale
        (float("inf"), "joint state is"),
    ],
)
def test_untrusted_states_make_the_policy_hold_at_its_setpoint(stack, position, reason):
    harness, processes, logs = stack
    wait_ready(harness, processes, logs)
    settle(harness)
    harness.run(2.0, joint_position=position)
    assert harness.chunks[-1].mode == HOLD and reason in harness.chunks[-1].reason, harness.chunks[-1].reason
    # The hold (and anything else sent) lies inside the limits: never the state itself.
    arm = [JOINTS.index(name) for name in ARM_JOINTS]
    for trajectory in harness.trajectories:
        points = np.array([p.positions for p in trajectory.points])
        assert np.all(points >= LIMITS.lower[arm] - 1e-9) and np.all(points <= LIMITS.upper[arm] + 1e-9)


def test_duplicate_joint_names_are_refused(stack):
    harness, processes, logs = stack
    wait_ready(harness, processes, logs)
    settle(harness)
    harness.run(2.0, joint_names=[*JOINTS, "elbow_flex"], joint_position=0.1)
    assert harness.chunks[-1].mode == HOLD
    assert "more than once" in (logs / "policy_node.log").read_text()


def test_disarming_mid_motion_holds_then_nothing_until_armed_again(stack):
    harness, processes, logs = stack
    wait_ready(harness, processes, logs)
    settle(harness, 2.0)
    response = harness.call_arm(False)
    assert response.success
    harness.run(1.5)
    first = next(i for i, c in enumerate(harness.chunks) if c.mode == DISARMED)
    assert harness.chunks[first].horizon == 1, "disarming ends in one hold"
    after = harness.chunks[first + 1 :]
    assert after and all(c.mode == DISARMED and c.horizon == 0 for c in after), "a disarmed policy sends nothing"
    assert len(harness.trajectories[-1].points) == 1
    harness.clear()
    assert harness.call_arm(True).success
    harness.run(2.0)
    assert harness.chunks[-1].mode == ACTIVE


def test_a_killed_perception_makes_the_policy_hold_and_a_restarted_one_resumes_it(stack, tiny_checkpoint):
    harness, processes, logs = stack
    wait_ready(harness, processes, logs)
    os.killpg(processes[0].pid, signal.SIGKILL)
    processes[0].wait()
    harness.clear()
    harness.run(MAX_LATENTS_AGE_S + 1.0)
    assert harness.chunks[-1].mode == HOLD and "latents are" in harness.chunks[-1].reason
    log = open(logs / "perception_node.log", "a")
    overrides = {"checkpoint_path": str(tiny_checkpoint), "device": "cpu"}
    processes[0] = start_node(PERCEPTION, PARAMS_FILE, overrides, log)
    harness.clear()
    end = time.monotonic() + 60.0
    while time.monotonic() < end and not (harness.chunks and harness.chunks[-1].mode == ACTIVE):
        harness.run(0.5)
    assert harness.chunks[-1].mode == ACTIVE


def test_joint_states_from_a_host_whose_clock_lags_are_named_in_the_diagnostics(stack):
    """Every state 2 s old on arrival, all alike: the policy holds (stale
    states), and /diagnostics says the clocks differ rather than only that."""
    from diagnostic_msgs.msg import DiagnosticArray

    from video2act_core.clock_offset import CLOCKS_HINT

    harness, processes, logs = stack
    wait_ready(harness, processes, logs)
    statuses = []
    subscription = harness.node.create_subscription(
        DiagnosticArray, "/diagnostics", lambda msg: statuses.extend(msg.status), 10
    )
    try:
        end = time.monotonic() + 30.0  # a bound for a broken stack, not a timing
        while time.monotonic() < end and not any(CLOCKS_HINT in s.message for s in statuses):
            harness.run(0.5, stamp_offset_s=-2.0)
        policy = [s for s in statuses if "System 1" in s.name and CLOCKS_HINT in s.message]
        assert policy, [s.message for s in statuses[-4:]]
        assert "joint state is" in policy[-1].message and "s behind this node's clock" in policy[-1].message
    finally:
        harness.node.destroy_subscription(subscription)
