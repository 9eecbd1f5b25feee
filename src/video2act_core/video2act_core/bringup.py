"""What each launch file starts, as plain data: one definition shared by
launch/*.launch.py (on a ROS 2 install), the ROS-free launcher (demo,
replay, tests) and the test of every node's effective parameters.

Launch-level settings (arguments such as `checkpoint:=`, and facts such as
"the simulator owns /clock") are written to a last params file under each
node's exact name, so they win over any section of the user's params files
(see params.py for rcl's rule). A `parameters=[{...}]` dict would not:
launch_ros writes it under `/**` when no namespace is given, a slot that
the params file already opened and whose node sections follow it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import yaml

from video2act_core.params import fully_qualified_name, overrides_document


@dataclass(frozen=True)
class Executable:
    package: str
    name: str
    node: str  # the node's name: its section in the params file


PERCEPTION = Executable("video2act_perception", "perception_node", "video2act_perception")
POLICY = Executable("video2act_policy", "policy_node", "video2act_policy")
SIM_ARM = Executable("video2act_sim", "sim_arm_node", "video2act_sim_arm")


@dataclass(frozen=True)
class LaunchArgument:
    name: str
    default: str
    description: str


_COMMON_ARGUMENTS = (
    LaunchArgument("namespace", "", "namespace for every node and relative topic of the stack"),
    LaunchArgument("params_file", "", "ROS 2 params file (default: share/video2act/config/video2act.yaml)"),
    LaunchArgument("overrides_file", "", "params file applied on top of params_file, e.g. config/bridges/gazebo.yaml"),
    LaunchArgument(
        "checkpoint", "", "checkpoint directory for both models (default: the params file's checkpoint_path)"
    ),
    LaunchArgument(
        "device", "", "torch device for both models: auto, cpu, cuda or cuda:N (default: the params file's)"
    ),
)
BRINGUP_ARGUMENTS = _COMMON_ARGUMENTS + (
    LaunchArgument(
        "robot",
        "so101",
        "robot profile: config/robots/<robot>.yaml (joints, limits, controller "
        "routing) over params_file, paired with config/robots/<robot>_controllers.yaml; or the path of "
        "your own profile",
    ),
    LaunchArgument("use_sim_time", "false", "follow /clock (Gazebo, Isaac Sim)"),
    LaunchArgument("start_armed", "false", "drive the arm without an ~/arm call (simulators only, never a robot)"),
)
# The simulated arms are SO-101s.
SIMULATED_ROBOT = "so101"
# Keys launch_ros keeps among the launch configurations (PushRosNamespace,
# SetRemap, SetParameter): not arguments of ours.
LAUNCH_ROS_CONFIGURATIONS = ("ros_namespace", "ros_remaps", "global_params")
SIM_ARGUMENTS = _COMMON_ARGUMENTS + (
    LaunchArgument("use_sim_time", "true", "the simulated arm publishes /clock and the models follow it"),
    LaunchArgument("backend", "", "simulator: kinematic or mujoco_so101 (default: the params file's)"),
    LaunchArgument("task", "", "reach or track (default: the params file's)"),
    LaunchArgument("scene", "", "original, lighting, object or background (default: the params file's)"),
)
# Launch arguments handed to the simulated arm as they are (when given).
SIM_PASSED = ("backend", "task", "scene")


@dataclass(frozen=True)
class NodeSpec:
    executable: Executable
    namespace: str
    params_files: tuple[str, ...]
    overrides: dict = field(default_factory=dict)  # launch-level values, above every params file


def launch_values(arguments: tuple[LaunchArgument, ...], given: dict[str, str]) -> dict[str, str]:
    """Defaults filled in; unknown names refused (a typo must not pass silently)."""
    known = {argument.name: argument.default for argument in arguments}
    unknown = set(given) - set(known)
    if unknown:
        raise ValueError(f"unknown launch arguments {sorted(unknown)}; known: {sorted(known)}")
    return {**known, **given}


def as_bool(name: str, text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise ValueError(f"{name} must be true or false, got '{text}'")
    return text.lower() == "true"


def _model_overrides(values: dict[str, str]) -> dict:
    overrides = {"use_sim_time": as_bool("use_sim_time", values["use_sim_time"])}
    if values["checkpoint"]:
        overrides["checkpoint_path"] = values["checkpoint"]
    if values["device"]:
        overrides["device"] = values["device"]
    return overrides


def robot_profile(robot: str, share: Path) -> tuple[Path | None, Path | None]:
    """(params overlay, controllers YAML) of a robot profile: by name, the
    pair config/robots/<robot>.yaml (optional: a robot whose params are all
    config/video2act.yaml's has none) and <robot>_controllers.yaml; by path,
    that overlay and the controllers file beside it, if any.

    Raises:
        ValueError: an unknown name or a missing file, naming the known profiles.
    """
    if robot.endswith((".yaml", ".yml")):
        overlay = Path(robot).expanduser()
        if not overlay.is_file():
            raise ValueError(f"robot profile {overlay} does not exist")
        controllers = overlay.with_name(f"{overlay.stem}_controllers.yaml")
        return overlay, controllers if controllers.is_file() else None
    robots = share / "config" / "robots"
    controllers = robots / f"{robot}_controllers.yaml"
    if not controllers.is_file():
        known = sorted(path.name.removesuffix("_controllers.yaml") for path in robots.glob("*_controllers.yaml"))
        raise ValueError(f"unknown robot '{robot}'; profiles in {robots}: {known}, or give a profile's path")
    overlay = robots / f"{robot}.yaml"
    return (overlay if overlay.is_file() else None), controllers


def _params_files(values: dict[str, str], share: Path) -> tuple[str, ...]:
    files = [values["params_file"] or str(share / "config" / "video2act.yaml")]
    if values.get("robot"):
        overlay, _ = robot_profile(values["robot"], share)
        if overlay is not None:
            files.append(str(overlay))
    if values["overrides_file"]:
        files.append(values["overrides_file"])
    return tuple(files)


def effective_namespace(pushed: str | None, namespace: str) -> str:
    """The namespace launch_ros gives a node declared with `namespace`
    inside a group that pushed `pushed` (PushRosNamespace's 'ros_namespace'
    launch configuration): an absolute one stands as it is, a relative one
    goes under the pushed one. Absolute, '' for the root."""
    if not namespace.startswith("/") and pushed:
        namespace = pushed.rstrip("/") + "/" + namespace
    return ("/" + namespace.strip("/")).rstrip("/")


def bringup_nodes(given: dict[str, str], share: Path) -> list[NodeSpec]:
    """Perception and policy for a robot or a simulator's ROS bridge."""
    values = launch_values(BRINGUP_ARGUMENTS, given)
    files, model = _params_files(values, share), _model_overrides(values)
    return [
        NodeSpec(PERCEPTION, values["namespace"], files, model),
        NodeSpec(
            POLICY, values["namespace"], files, {**model, "start_armed": as_bool("start_armed", values["start_armed"])}
        ),
    ]


def sim_nodes(given: dict[str, str], share: Path) -> list[NodeSpec]:
    """The simulated arm closed-loop with both models, started armed: an
    SO-101, routed to its controllers as the robot is."""
    values = launch_values(SIM_ARGUMENTS, given)
    files, model = _params_files({**values, "robot": SIMULATED_ROBOT}, share), _model_overrides(values)
    sim = {"publish_clock": model["use_sim_time"]}
    if values["checkpoint"]:
        sim["checkpoint_path"] = values["checkpoint"]
    sim.update({name: values[name] for name in SIM_PASSED if values[name]})
    return [
        NodeSpec(SIM_ARM, values["namespace"], files, sim),
        NodeSpec(PERCEPTION, values["namespace"], files, model),
        NodeSpec(POLICY, values["namespace"], files, {**model, "start_armed": True}),
    ]


def write_params_files(spec: NodeSpec, directory: Path) -> list[str]:
    """The node's params files, then its overrides as a last file; the
    order in which both `ros2 launch` and `ros_arguments` pass them."""
    files = list(spec.params_files)
    if spec.overrides:
        name = fully_qualified_name(spec.executable.node, spec.namespace).strip("/").replace("/", "__")
        path = Path(directory) / f"{name}.overrides.yaml"
        path.write_text(yaml.safe_dump(overrides_document(spec.executable.node, spec.namespace, spec.overrides)))
        files.append(str(path))
    return files


def ros_arguments(spec: NodeSpec, params_files: list[str]) -> list[str]:
    """The command line launch_ros gives the node: name, namespace, then params files in order."""
    namespace = "/" + spec.namespace.strip("/")
    arguments = ["--ros-args", "-r", f"__node:={spec.executable.node}", "-r", f"__ns:={namespace}"]
    for path in params_files:
        arguments += ["--params-file", path]
    return arguments


def launch_description(arguments: tuple[LaunchArgument, ...], specs: Callable[[dict[str, str], Path], list[NodeSpec]]):
    """The LaunchDescription of a launch file: its declared arguments, then
    the nodes `specs` makes of their values. `launch` and `launch_ros` are
    imported here, not at module level: they exist only on a ROS 2 install."""
    from ament_index_python.packages import get_package_share_directory
    from launch.actions import DeclareLaunchArgument, OpaqueFunction
    from launch.logging import get_logger
    from launch.substitutions import LaunchConfiguration
    from launch_ros.actions import Node

    from launch import LaunchDescription

    def nodes(context):
        values = {argument.name: LaunchConfiguration(argument.name).perform(context) for argument in arguments}
        unknown = sorted(set(context.launch_configurations) - set(values) - set(LAUNCH_ROS_CONFIGURATIONS))
        if unknown:  # `ros2 launch` itself accepts any name:=value without a word
            get_logger("video2act").warning(
                f"launch arguments {unknown} are not video2act's (a typo? see "
                "--show-args; a parent launch file's own are fine)"
            )
        directory = Path(tempfile.mkdtemp(prefix="video2act_launch_"))
        # Under a PushRosNamespace group the nodes live in the pushed
        # namespace too: the launch-level overrides are keyed to the names
        # they will really have, or rcl would ignore them.
        pushed = context.launch_configurations.get("ros_namespace")
        return [
            Node(
                package=spec.executable.package,
                executable=spec.executable.name,
                name=spec.executable.node,
                namespace=spec.namespace,
                parameters=write_params_files(spec, directory),
                output="screen",
                emulate_tty=True,
            )
            for spec in (
                replace(spec, namespace=effective_namespace(pushed, spec.namespace))
                for spec in specs(values, Path(get_package_share_directory("video2act")))
            )
        ]

    return LaunchDescription(
        [DeclareLaunchArgument(a.name, default_value=a.default, description=a.description) for a in arguments]
        + [OpaqueFunction(function=nodes)]
    )
