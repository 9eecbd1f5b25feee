"""The installed launch files run by the upstream `launch`/`launch_ros`, as
`ros2 launch` runs them. Those have no PyPI wheels: the test runs where
VIDEO2ACT_UPSTREAM_LAUNCH names a runner script that puts a snapshot of them
on the path and calls `ros2launch.api.launch_a_launch_file` with its
arguments (how to make one: docs/robot.md, "Testing the launch files"), and
is skipped elsewhere (CI). The same launch logic without `launch` is tested
in test_launch_params.py."""

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import rclpy
from rclpy.qos import qos_profile_sensor_data
from rosgraph_msgs.msg import Clock
from trajectory_msgs.msg import JointTrajectory

RUNNER = os.environ.get("VIDEO2ACT_UPSTREAM_LAUNCH")
pytestmark = [
    pytest.mark.dds,
    pytest.mark.skipif(not RUNNER, reason="VIDEO2ACT_UPSTREAM_LAUNCH (upstream launch runner) not set"),
]

GROUP_LAUNCH = textwrap.dedent("""
    import os
    from ament_index_python.packages import get_package_share_directory
    from launch import LaunchDescription
    from launch.actions import GroupAction, IncludeLaunchDescription
    from launch.launch_description_sources import PythonLaunchDescriptionSource
    from launch_ros.actions import PushRosNamespace

    def generate_launch_description():
        sim = os.path.join(get_package_share_directory("video2act"), "launch", "sim.launch.py")
        return LaunchDescription([GroupAction([PushRosNamespace("arm1"),
                                               IncludeLaunchDescription(PythonLaunchDescriptionSource(sim))])])
""")


def test_sim_launch_inside_a_pushed_namespace_keeps_its_overrides(tmp_path):
    """The multi-robot pattern: the sim still owns /clock and the policy is
    still armed (both launch-level settings), so trajectories flow to the
    namespaced controllers."""
    launch_file = tmp_path / "group.launch.py"
    launch_file.write_text(GROUP_LAUNCH)
    log = open(tmp_path / "launch.log", "w")
    launch = subprocess.Popen(
        [sys.executable, RUNNER, "--noninteractive", str(launch_file), "device:=cpu"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    rclpy.init()
    node = rclpy.create_node("video2act_upstream_launch_probe")
    seen = {"arm": [], "gripper": [], "clock": []}
    node.create_subscription(JointTrajectory, "/arm1/arm_controller/joint_trajectory", seen["arm"].append, 10)
    node.create_subscription(JointTrajectory, "/arm1/gripper_controller/joint_trajectory", seen["gripper"].append, 10)
    node.create_subscription(Clock, "/clock", seen["clock"].append, qos_profile_sensor_data)
    try:
        deadline = time.monotonic() + 240.0  # a bound for a broken stack, not a timing
        while not all(seen.values()) and time.monotonic() < deadline and launch.poll() is None:
            rclpy.spin_once(node, timeout_sec=0.1)
        assert all(seen.values()), ({k: len(v) for k, v in seen.items()}, Path(log.name).read_text()[-3000:])
        assert len(seen["arm"][-1].joint_names) == 5 and list(seen["gripper"][-1].joint_names) == ["gripper"]
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        with contextlib.suppress(ProcessLookupError):  # as a terminal's Ctrl-C reaches the group
            os.killpg(launch.pid, signal.SIGINT)
        try:
            code = launch.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(launch.pid, signal.SIGKILL)
            code = launch.wait()
        log.close()
    text = (tmp_path / "launch.log").read_text()
    assert code == 0, text[-3000:]
    assert text.count("finished cleanly") >= 3, text[-3000:]
