"""Episodes over real DDS: the simulated arm resets often, mid-motion, and
nothing planned before a reset moves the arm after it; the arm never moves
faster than its hardware allows."""

import time

import numpy as np
import pytest
import rclpy
from diagnostic_msgs.msg import DiagnosticStatus
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import JointState
from trajectory_msgs.msg import JointTrajectory

from conftest import PARAMS_FILE
from video2act_core.messages import stamp_to_ns
from video2act_core.params import SimArmParams, node_params
from video2act_eval.launcher import PERCEPTION, POLICY, SIM_ARM, start_node, stop_nodes

pytestmark = pytest.mark.dds

SIM = node_params(SimArmParams, PARAMS_FILE, "video2act_sim_arm")


def test_no_command_planned_before_a_reset_moves_the_arm_after_it(tiny_checkpoint, tmp_path):
    common = {"checkpoint_path": str(tiny_checkpoint), "device": "cpu", "max_latents_age_s": 5.0}
    # Short episodes: the untrained policy is mid-motion at every reset.
    nodes = {
        SIM_ARM: {**common, "episode_time_limit_s": 2.0, "episode_settle_s": 0.0},
        PERCEPTION: common,
        POLICY: {**common, "start_armed": True},
    }
    log = open(tmp_path / "nodes.log", "w")
    processes = [start_node(exe, PARAMS_FILE, overrides, log) for exe, overrides in nodes.items()]
    states, trajectories, reports = [], [], []
    node = None
    try:
        rclpy.init()
        node = rclpy.create_node("video2act_episode_probe")
        node.create_subscription(
            JointState,
            SIM.joint_states_topic,
            lambda m: states.append((stamp_to_ns(m.header.stamp), np.array(m.position), np.array(m.velocity))),
            qos_profile_sensor_data,
        )
        node.create_subscription(
            JointTrajectory,
            SIM.trajectory_topic,
            lambda m: trajectories.append((stamp_to_ns(m.header.stamp), node.get_clock().now().nanoseconds)),
            10,
        )
        node.create_subscription(
            DiagnosticStatus,
            "video2act/episode_report",
            lambda m: reports.append({kv.key: kv.value for kv in m.values}),
            10,
        )
        end = time.monotonic() + 90.0
        while time.monotonic() < end and len([r for r in reports if int(r["commands"]) > 0]) < 6:
            rclpy.spin_once(node, timeout_sec=0.05)
            assert all(p.poll() is None for p in processes), (tmp_path / "nodes.log").read_text()[-3000:]
    finally:
        codes = stop_nodes(processes)
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
        log.close()
    assert codes == [0, 0, 0], (tmp_path / "nodes.log").read_text()[-3000:]
    driven = [r for r in reports if int(r["commands"]) > 0]
    assert len(driven) >= 6, reports

    # After each reset the arm rests at its new start pose until the first
    # command planned in the new episode arrives: nothing older moved it.
    starts = [int(r["start_ns"]) for r in reports[1:]]
    checked = 0
    for start, next_start in zip(starts, starts[1:] + [2**63]):
        arrivals = [received for stamp, received in trajectories if stamp > start]
        if not arrivals:
            continue
        until = min(min(arrivals) - 100_000_000, next_start)
        # The last state of the last episode carries the start stamp itself.
        resting = [position for stamp, position, _ in states if start < stamp < until]
        if len(resting) >= 2:
            np.testing.assert_allclose(resting, np.broadcast_to(resting[0], np.shape(resting)), atol=1e-9)
            checked += 1
    assert checked >= 4, (checked, starts)

    velocities = np.array([velocity for _, _, velocity in states])
    limit = np.asarray(SIM.max_joint_velocity) * (1 + SIM.hardware_limit_margin)
    assert np.all(np.abs(velocities) <= limit + 1e-9), np.abs(velocities).max(axis=0)
    refused = sum(int(r["refused_from_last_episode"]) for r in reports)
    limited = sum(int(r["limited_steps"]) for r in reports)
    print(
        f"{len(reports)} episodes, {checked} resets checked at rest, {refused} commands refused as planned "
        f"before their episode, {limited} steps held back by the hardware limits, peak speed "
        f"{np.max(np.abs(velocities) / limit):.2f}x the limit"
    )
