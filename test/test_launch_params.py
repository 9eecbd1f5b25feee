"""Every node's effective parameters for each launch file and documented
argument, resolved by real rclpy from the same params files and command line
that `ros2 launch` hands the node (video2act_core.bringup), and by our own
offline resolver, which must agree."""

from dataclasses import replace

import pytest
import rclpy
import yaml
from rclpy.node import Node

from conftest import PARAMS_FILE, REPO
from video2act_core.bringup import (
    bringup_nodes,
    effective_namespace,
    robot_profile,
    ros_arguments,
    sim_nodes,
    write_params_files,
)
from video2act_core.params import NODE_PARAMS, node_params
from video2act_core.ros import declare_params

GAZEBO = REPO / "config" / "bridges" / "gazebo.yaml"


def effective(spec, directory):
    """(params, use_sim_time, resolved trajectory topic) of the node as rclpy builds it."""
    files = write_params_files(spec, directory)
    context = rclpy.Context()
    rclpy.init(args=ros_arguments(spec, files), context=context)
    try:
        node = Node("unnamed", context=context)  # -r __node:= and __ns:= name it, as launch does
        try:
            params = declare_params(node, NODE_PARAMS[spec.executable.node])
            offline = node_params(
                NODE_PARAMS[spec.executable.node], files, spec.executable.node, namespace=spec.namespace
            )
            assert params == offline, "rclpy and video2act_core.params resolve the files differently"
            assert (
                node.get_fully_qualified_name()
                == ("/" + spec.namespace.strip("/")).rstrip("/") + "/" + spec.executable.node
            )
            return params, node.get_parameter("use_sim_time").value, node.resolve_topic_name(params.trajectory_topic)
        finally:
            node.destroy_node()
    finally:
        rclpy.shutdown(context=context)


def by_node(specs, directory):
    return {spec.executable.node: effective(spec, directory) for spec in specs}


def test_bringup_defaults_start_a_disarmed_policy_with_the_files_limits(tmp_path):
    nodes = by_node(bringup_nodes({"params_file": str(PARAMS_FILE)}, REPO), tmp_path)
    policy, sim_time, topic = nodes["video2act_policy"]
    assert not policy.start_armed and not sim_time
    assert policy.max_joint_velocity == [2.0, 2.0, 2.0, 2.5, 3.0, 3.0]
    assert topic == "/arm_controller/joint_trajectory"
    assert nodes["video2act_perception"][0].checkpoint_path == "checkpoints/sim_demo"


@pytest.mark.parametrize("namespace", ["arm1", "/robots/left"])
def test_a_namespace_keeps_the_limits_and_moves_the_topics(tmp_path, namespace):
    nodes = by_node(bringup_nodes({"params_file": str(PARAMS_FILE), "namespace": namespace}, REPO), tmp_path)
    policy, _, topic = nodes["video2act_policy"]
    assert policy.joint_lower_limits == [-2.0, -1.8, -0.2, -1.7, -2.8, 0.0]
    assert policy.rate_hz == 30.0 and nodes["video2act_perception"][0].rate_hz == 2.0
    assert topic == "/" + namespace.strip("/") + "/arm_controller/joint_trajectory"


def test_every_bringup_argument_takes_effect(tmp_path):
    given = {
        "params_file": str(PARAMS_FILE),
        "overrides_file": str(GAZEBO),
        "checkpoint": "/ckpt/mine",
        "device": "cpu",
        "use_sim_time": "true",
        "start_armed": "true",
        "namespace": "arm2",
    }
    nodes = by_node(bringup_nodes(given, REPO), tmp_path)
    for name in ("video2act_perception", "video2act_policy"):
        params, sim_time, _ = nodes[name]
        assert (params.checkpoint_path, params.device, sim_time) == ("/ckpt/mine", "cpu", True)
        assert params.image_topic == "/camera/image"  # from the Gazebo overrides
    assert nodes["video2act_policy"][0].start_armed


def test_launch_settings_win_over_any_section_of_a_users_params_file(tmp_path):
    """Even a plain `video2act_policy:` section (the exact name, which
    outranks `/**/video2act_policy`) cannot undo a launch argument."""
    users = tmp_path / "users.yaml"
    users.write_text(
        yaml.safe_dump(
            {
                "/**": {"ros__parameters": {"checkpoint_path": "/theirs", "device": "cuda"}},
                "video2act_policy": {
                    "ros__parameters": {"start_armed": True, "checkpoint_path": "/theirs", "use_sim_time": True}
                },
                "/video2act_sim_arm": {"ros__parameters": {"publish_clock": False}},
            }
        )
    )
    nodes = by_node(bringup_nodes({"params_file": str(users), "checkpoint": "/ours"}, REPO), tmp_path)
    policy, sim_time, _ = nodes["video2act_policy"]
    assert (policy.start_armed, policy.checkpoint_path, sim_time) == (False, "/ours", False)
    assert policy.device == "cuda"  # not a launch argument here: the file's value stands
    sim = by_node(sim_nodes({"params_file": str(users)}, REPO), tmp_path)
    assert sim["video2act_sim_arm"][0].publish_clock
    assert sim["video2act_policy"][0].start_armed and sim["video2act_policy"][1]


def test_the_sim_launch_owns_the_clock_and_arms_the_policy(tmp_path):
    nodes = by_node(sim_nodes({"params_file": str(PARAMS_FILE)}, REPO), tmp_path)
    assert nodes["video2act_sim_arm"][0].publish_clock and not nodes["video2act_sim_arm"][1]
    assert nodes["video2act_perception"][1] and nodes["video2act_policy"][1]
    assert nodes["video2act_policy"][0].start_armed


def test_every_sim_argument_takes_effect(tmp_path):
    given = {
        "params_file": str(PARAMS_FILE),
        "namespace": "sim1",
        "backend": "mujoco_so101",
        "use_sim_time": "false",
        "checkpoint": "/ckpt/x",
        "device": "cpu",
        "task": "track",
        "scene": "lighting",
    }
    nodes = by_node(sim_nodes(given, REPO), tmp_path)
    sim, sim_time, topic = nodes["video2act_sim_arm"]
    assert (sim.backend, sim.publish_clock, sim_time, sim.checkpoint_path) == ("mujoco_so101", False, False, "/ckpt/x")
    assert (sim.task, sim.scene) == ("track", "lighting")
    assert topic == "/sim1/arm_controller/joint_trajectory"
    assert not nodes["video2act_policy"][1] and nodes["video2act_policy"][0].device == "cpu"


@pytest.mark.parametrize(
    "pushed, namespace, expected",
    [
        (None, "", ""),
        (None, "sim1", "/sim1"),
        ("/arm1", "", "/arm1"),
        ("/arm1", "sim1", "/arm1/sim1"),
        ("/arm1", "/abs", "/abs"),
        ("/arm1/inner", "sim1/", "/arm1/inner/sim1"),
    ],
)
def test_a_pushed_namespace_prefixes_a_relative_one_as_launch_ros_does(pushed, namespace, expected):
    # The table launch_ros jazzy's prefix_namespace / make_namespace_absolute give (checked live).
    assert effective_namespace(pushed, namespace) == expected


def test_overrides_apply_inside_a_pushed_namespace(tmp_path):
    """A PushRosNamespace group around sim.launch.py (the usual multi-robot
    pattern): the launch-level settings (the sim owns /clock, the policy is
    armed, both follow sim time) reach the nodes under their real names."""
    specs = [
        replace(spec, namespace=effective_namespace("/arm1", spec.namespace))
        for spec in sim_nodes({"params_file": str(PARAMS_FILE), "checkpoint": "/ckpt/x"}, REPO)
    ]
    nodes = by_node(specs, tmp_path)
    sim, sim_sim_time, topic = nodes["video2act_sim_arm"]
    assert sim.publish_clock and not sim_sim_time and topic == "/arm1/arm_controller/joint_trajectory"
    policy, policy_sim_time, _ = nodes["video2act_policy"]
    assert policy.start_armed and policy_sim_time and policy.checkpoint_path == "/ckpt/x"


def test_a_robot_profile_lays_its_joints_and_controllers_over_the_params_file(tmp_path):
    nodes = by_node(bringup_nodes({"params_file": str(PARAMS_FILE), "robot": "industrial_6dof"}, REPO), tmp_path)
    policy = nodes["video2act_policy"][0]
    assert policy.joint_names[0] == "shoulder_pan_joint" and policy.gripper_joint_names == []
    assert policy.rate_hz == 30.0  # the stack's settings stay the params file's
    so101 = by_node(bringup_nodes({"params_file": str(PARAMS_FILE)}, REPO), tmp_path)["video2act_policy"][0]
    assert so101.gripper_joint_names == ["gripper"]
    robots = REPO / "config" / "robots"
    assert robot_profile("so101", REPO) == (robots / "so101.yaml", robots / "so101_controllers.yaml")
    with pytest.raises(ValueError, match=r"unknown robot 'ur10'.*\['industrial_6dof', 'so101'\]"):
        bringup_nodes({"robot": "ur10"}, REPO)
    mine = tmp_path / "my_arm.yaml"
    mine.write_text(yaml.safe_dump({"/**": {"ros__parameters": {"max_joint_velocity": [1.0] * 6}}}))
    assert robot_profile(str(mine), REPO) == (mine, None)
    assert (
        by_node(bringup_nodes({"params_file": str(PARAMS_FILE), "robot": str(mine)}, REPO), tmp_path)[
            "video2act_policy"
        ][0].max_joint_velocity
        == [1.0] * 6
    )


@pytest.mark.parametrize(
    "given, message",
    [
        ({"checkpoint_path": "/x"}, "unknown launch arguments"),
        ({"use_sim_time": "yes"}, "must be true or false"),
    ],
)
def test_mistyped_launch_arguments_are_refused(given, message):
    with pytest.raises(ValueError, match=message):
        bringup_nodes(given, REPO)


def test_offline_tools_read_the_shared_section_of_a_users_params_file(tmp_path):
    """Training and the demo read what every node shares (`/**`) from the
    file they are given, not the defaults, and no node's own section."""
    from video2act_core.params import CommonParams

    params = yaml.safe_load(PARAMS_FILE.read_text())
    params["/**"]["ros__parameters"].update(image_topic="front/image_raw", extra_camera_topics=["wrist/image_raw"])
    params["/**/video2act_policy"]["ros__parameters"]["trajectory_topic"] = "policy_only/joint_trajectory"
    users = tmp_path / "robot.yaml"
    users.write_text(yaml.safe_dump(params))
    shared = node_params(CommonParams, users, "/**")
    assert (shared.image_topic, shared.extra_camera_topics) == ("front/image_raw", ["wrist/image_raw"])
    assert shared.trajectory_topic == node_params(CommonParams, PARAMS_FILE, "/**").trajectory_topic


def test_an_empty_list_in_a_later_file_leaves_the_earlier_value_as_rcl_does(tmp_path):
    """rcl's YAML parser drops an empty sequence (no element type), so a
    profile cannot clear a list: both resolvers keep the earlier value."""
    later = tmp_path / "later.yaml"
    later.write_text(yaml.safe_dump({"/**": {"ros__parameters": {"gripper_joint_names": []}}}))
    given = {"params_file": str(PARAMS_FILE), "overrides_file": str(later)}
    policy = by_node(bringup_nodes(given, REPO), tmp_path)["video2act_policy"][0]  # `effective` compares both
    assert policy.gripper_joint_names == ["gripper"]
