"""How users run the stack: Ctrl-C stops every node cleanly with a last
hold, and two namespaced stacks side by side keep their own limits and
topics. Separate processes over real DDS."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import rclpy

from conftest import JOINTS, PARAMS_FILE
from dds_harness import PARAMS, PARAMS_FILES, Harness, commands_inside_envelope, run_stack, wait_ready
from video2act_core.checkpoint import read_manifest
from video2act_core.control import JointLimits
from video2act_core.latents import Latents
from video2act_core.messages import fill_latents_message
from video2act_core.ros import latents_qos
from video2act_eval.launcher import POLICY, start_node, stop_nodes
from video2act_msgs.msg import ActionChunk, SpatioMotionLatents

pytestmark = pytest.mark.dds


def test_ctrl_c_stops_every_node_cleanly_and_the_last_command_is_a_hold(tiny_checkpoint, tmp_path):
    stack = run_stack(tiny_checkpoint, tmp_path)
    harness, processes, logs = next(stack)
    try:
        stopped_s = interrupt_like_a_terminal(harness, processes, logs)
        print(f"every node exited {stopped_s:.2f} s after Ctrl-C")
        assert stopped_s < 2.0
        last = harness.all_chunks[-1]
        assert last.mode == ActionChunk.MODE_DISARMED and last.reason == "stopping" and last.horizon == 1
        np.testing.assert_allclose(last.positions, last.command_origin)  # at the setpoint in force
        assert len(harness.trajectories[-1].points) == 1
        with np.testing.assert_raises(StopIteration):
            next(stack)  # exit codes 0, no traceback, every command inside the envelope
    finally:
        stop_nodes(processes)  # when the test failed before the stack's own teardown
        rclpy.try_shutdown()


def interrupt_like_a_terminal(harness, processes, logs) -> float:
    """Seconds from Ctrl-C until every node exited. A terminal's Ctrl-C
    reaches every process of the group; a non-interactive `ros2 launch`
    forwards a second SIGINT at once."""
    wait_ready(harness, processes, logs)
    harness.run(1.0)
    started = time.monotonic()
    for signum in (signal.SIGINT, signal.SIGINT):
        for process in processes:
            os.killpg(process.pid, signum)
        time.sleep(0.05)
    deadline = started + 10.0
    while any(p.poll() is None for p in processes) and time.monotonic() < deadline:
        rclpy.spin_once(harness.node, timeout_sec=0.02)
    stopped_s = time.monotonic() - started
    end = time.monotonic() + 0.5
    while time.monotonic() < end:
        rclpy.spin_once(harness.node, timeout_sec=0.02)
    return stopped_s


def send_latents(publisher, manifest, stamp):
    tokens = np.zeros((manifest.vdm.spatial_grid**2, manifest.vdm.token_dim), np.float32)
    msg = SpatioMotionLatents()
    msg.header.stamp = stamp
    fill_latents_message(
        msg, Latents(tokens, tokens, 0.0, views=tokens if manifest.dit.view_tokens else None), manifest.model_id, 0
    )
    publisher.publish(msg)


def test_two_namespaced_stacks_keep_their_own_limits_and_topics(tiny_checkpoint, tmp_path):
    slow = [0.3] * len(JOINTS)
    limits = {
        "arm1": JointLimits.from_lists(
            JOINTS, PARAMS.joint_lower_limits, PARAMS.joint_upper_limits, PARAMS.max_joint_velocity
        ),
        "arm2": JointLimits.from_lists(JOINTS, PARAMS.joint_lower_limits, PARAMS.joint_upper_limits, slow),
    }
    overrides = {"checkpoint_path": str(tiny_checkpoint), "device": "cpu", "start_armed": True}
    log = open(tmp_path / "policies.log", "w")
    processes = [
        start_node(
            POLICY,
            PARAMS_FILES,
            {**overrides, **({"max_joint_velocity": slow} if ns == "arm2" else {})},
            log,
            namespace=ns,
        )
        for ns in limits
    ]
    try:
        rclpy.init()
        harnesses = {ns: Harness(namespace=ns, initial_position=0.1 if ns == "arm1" else 0.3) for ns in limits}
        manifest = read_manifest(tiny_checkpoint)
        latents = {
            ns: h.node.create_publisher(SpatioMotionLatents, PARAMS.latents_topic, latents_qos())
            for ns, h in harnesses.items()
        }
        end = time.monotonic() + 60.0
        # Only arm1 gets joint states at first: arm2 must not act on them.
        while time.monotonic() < end and not harnesses["arm1"].trajectories:
            send_latents(latents["arm1"], manifest, harnesses["arm1"].now().to_msg())
            harnesses["arm1"].run(0.2, images=False)
            rclpy.spin_once(harnesses["arm2"].node, timeout_sec=0.01)
        assert harnesses["arm1"].trajectories and not harnesses["arm2"].trajectories
        for _ in range(40):
            for ns, harness in harnesses.items():
                send_latents(latents[ns], manifest, harness.now().to_msg())
                harness.run(0.05, images=False)
        for ns, harness in harnesses.items():
            checked = commands_inside_envelope(harness.all_chunks, harness.fresh_start_ns, limits[ns])
            print(f"{ns}: {checked} commands inside its own envelope")
            assert checked > 5 and not harness.rejections()
            graph = dict(harness.node.get_topic_names_and_types())
            assert f"/{ns}/arm_controller/joint_trajectory" in graph
        # arm2's slower limit shows: its steps are at most 0.03 per 0.1 s point.
        arm2 = [c for c in harnesses["arm2"].all_chunks if c.horizon > 1]
        steps = np.abs(np.diff(np.asarray(arm2[-1].positions).reshape(arm2[-1].horizon, -1), axis=0))
        assert steps.max() <= 0.3 * PARAMS.action_period_s + 1e-9
    finally:
        codes = stop_nodes(processes)
        rclpy.try_shutdown()
        log.close()
    assert codes == [0, 0], (tmp_path / "policies.log").read_text()[-3000:]


@pytest.mark.parametrize("after_s", [0.5, 8.0], ids=["while-loading", "running"])
def test_a_node_whose_launcher_dies_stops_instead_of_driving_on(tiny_checkpoint, tmp_path, after_s):
    """`ros2 launch` killed by SIGTERM leaves its children running
    (ros2/launch#666); ours ask the kernel for SIGTERM when their parent
    dies, from their first line (torch takes seconds to import)."""
    launcher = subprocess.Popen(
        [sys.executable, "-c", LAUNCHER, str(PARAMS_FILE), str(tiny_checkpoint), str(tmp_path / "policy.log")],
        stdout=subprocess.PIPE,
        text=True,
    )
    node_pid = int(launcher.stdout.readline())
    time.sleep(after_s)
    launcher.kill()
    launcher.wait()
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline and os.path.exists(f"/proc/{node_pid}"):
        time.sleep(0.1)
    assert not os.path.exists(f"/proc/{node_pid}"), (tmp_path / "policy.log").read_text()[-2000:]
    assert "Traceback" not in (tmp_path / "policy.log").read_text()


# A launcher that starts the policy as its child (same session) and waits.
LAUNCHER = """
import subprocess, sys, time
from video2act_core.bringup import POLICY, NodeSpec, ros_arguments, write_params_files
from video2act_eval.launcher import executable_path
import tempfile
spec = NodeSpec(POLICY, "", (sys.argv[1],), {"checkpoint_path": sys.argv[2], "device": "cpu"})
files = write_params_files(spec, tempfile.mkdtemp())
node = subprocess.Popen([sys.executable, str(executable_path(POLICY)), *ros_arguments(spec, files)],
                        stdout=open(sys.argv[3], "w"), stderr=subprocess.STDOUT)
print(node.pid, flush=True)
time.sleep(600)
"""
