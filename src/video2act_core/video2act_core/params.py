"""Node parameters: one dataclass per node, the single schema for the ROS
parameter declarations (with descriptions and ranges that
`ros2 param describe` shows) and for plain-Python use of `config/*.yaml`.

The YAML follows the ROS 2 params-file layout: shared facts (topics, joint
names, checkpoint) live under `/**` so every node reads the same value;
node-specific values under `/**/<node name>`, which applies in any
namespace (a plain `<node name>` section only matches the root namespace).
rcl keeps one slot per section name, ordered by where it first appears
across the files, and the last matching slot wins: a launch-level `/**`
dict loses to a node section that came before it. Launch-level settings
therefore go in a last file under the node's exact name
(`overrides_document`), a slot no earlier file has.

Topic names are relative, so a namespace moves the whole stack.
"""

from __future__ import annotations

import dataclasses
import math
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

WILDCARD = "/**"


def param(
    default,
    description: str,
    *,
    low: float | None = None,
    high: float | None = None,
    choices: tuple[str, ...] | None = None,
):
    """A params dataclass field with what ROS shows and checks for it."""
    metadata = {"description": description, "low": low, "high": high, "choices": choices}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def validate_fields(params) -> None:
    """Refuse values outside a field's range or choices, naming the value given."""
    for item in dataclasses.fields(params):
        value, meta = getattr(params, item.name), item.metadata
        if meta.get("choices") and value not in meta["choices"]:
            raise ValueError(f"{item.name} must be one of {list(meta['choices'])}, got {value!r}")
        for bound, outside in (("low", lambda v, b: v < b), ("high", lambda v, b: v > b)):
            limit = meta.get(bound)
            if limit is None:
                continue
            values = value if isinstance(value, list) else [value]
            bad = [v for v in values if isinstance(v, (int, float)) and (not math.isfinite(v) or outside(v, limit))]
            if bad:
                raise ValueError(f"{item.name} must lie in [{meta.get('low')}, {meta.get('high')}], got {value!r}")


@dataclass
class CommonParams:
    """Facts every node of the stack shares (under `/**` in the YAML)."""

    joint_names: list[str] = param(
        ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"],
        "joints the policy reads and commands, in the checkpoint's order",
    )
    image_topic: str = param("camera/image_raw", "sensor_msgs/Image camera input")
    # A wrist camera and the like: their frames give System 1 image tokens
    # (checkpoints with view_cameras > 1) and are recorded with demonstrations.
    extra_camera_topics: list[str] = param(
        [],
        "more sensor_msgs/Image cameras whose frames give System 1 image "
        "tokens, in the checkpoint's order after image_topic (empty: none)",
    )
    joint_states_topic: str = param("joint_states", "sensor_msgs/JointState input")
    latents_topic: str = param("video2act/latents", "video2act_msgs/SpatioMotionLatents from System 2 to System 1")
    trajectory_topic: str = param(
        "arm_controller/joint_trajectory", "trajectory_msgs/JointTrajectory to the arm's joint_trajectory_controller"
    )
    # A gripper usually has a controller of its own; a trajectory naming a
    # joint the arm controller does not own is rejected as a whole.
    gripper_joint_names: list[str] = param(
        [], "joints sent to the gripper controller instead of the arm's (empty: all to trajectory_topic)"
    )
    gripper_command_topic: str = param("gripper_controller/joint_trajectory", "the gripper controller's command topic")
    gripper_command_type: str = param(
        "joint_trajectory",
        "JointTrajectory for a joint_trajectory_controller, std_msgs/Float64MultiArray "
        "for a forward_command_controller",
        choices=("joint_trajectory", "float64_multi_array"),
    )
    action_chunk_topic: str = param("video2act/action_chunk", "video2act_msgs/ActionChunk monitoring output")
    # std_msgs/Empty: a new episode starts (a sim or scene reset). Perception
    # drops its buffered frames and the policy the latents made before it,
    # as LeRobot's policy.reset() does between episodes.
    reset_topic: str = param("video2act/reset", "std_msgs/Empty: a new episode starts")
    instruction_topic: str = param(
        "video2act/instruction",
        "std_msgs/String task instruction (transient local): recorded with demonstrations, read by the policy "
        "(and by perception when its video model is conditioned on it)",
    )
    checkpoint_path: str = param(
        "checkpoints/sim_demo", "checkpoint directory; relative paths resolve against share/video2act"
    )
    device: str = param("auto", "torch device: auto, cpu, cuda or cuda:N")
    dtype: str = param(
        "auto",
        "model dtype, half precision only on CUDA (auto: the precision the checkpoint was trained in, its "
        "recipe's; System 2 casts only its frozen pretrained models, keeping what they keep in float32)",
        choices=("auto", "float32", "bfloat16", "float16"),
    )
    # Stamps from another machine's clock may lead ours a little; more than
    # this is a broken clock, and a message from the future never goes stale.
    max_stamp_lead_s: float = param(
        0.1, "inputs stamped further than this ahead of the node clock are refused", low=0.0, high=10.0
    )
    # The arm's limits, one value per joint: the policy's safety envelope
    # (the tighter of these and the URDF's) and the simulated arm's hardware.
    # Without position and velocity limits for every joint the policy refuses to arm.
    joint_lower_limits: list[float] = param([], "lowest commanded position per joint (rad or m)")
    joint_upper_limits: list[float] = param([], "highest commanded position per joint (rad or m)")
    max_joint_velocity: list[float] = param([], "largest commanded speed per joint (rad/s or m/s)", low=1e-6)
    # The camera's pose in the base frame is recorded with demonstrations
    # (/tf_static) and checkpoints, and checked against the robot's tf tree.
    base_frame: str = param("base_link", "the arm's base frame: joint limits and the camera pose refer to it")
    camera_frame: str = param("camera_optical_frame", "the camera's optical frame in the tf tree")

    def __post_init__(self):
        validate_fields(self)
        if len(set(self.joint_names)) != len(self.joint_names):
            raise ValueError(f"joint_names has duplicates: {self.joint_names}")
        cameras = [self.image_topic, *self.extra_camera_topics]
        if len(set(cameras)) != len(cameras):
            raise ValueError(f"image_topic and extra_camera_topics name a camera twice: {cameras}")
        strangers = [name for name in self.gripper_joint_names if name not in self.joint_names]
        if strangers:
            raise ValueError(f"gripper_joint_names {strangers} are not in joint_names {self.joint_names}")
        if self.gripper_joint_names and len(self.gripper_joint_names) == len(self.joint_names):
            raise ValueError("gripper_joint_names takes every joint: the arm controller would get none")
        joints = len(self.joint_names)
        for name in ("joint_lower_limits", "joint_upper_limits", "max_joint_velocity"):
            values = getattr(self, name)
            if values and len(values) != joints:
                raise ValueError(f"{name} needs {joints} values (one per joint of {self.joint_names}), got {values}")
        if (
            self.joint_lower_limits
            and self.joint_upper_limits
            and any(low > high for low, high in zip(self.joint_lower_limits, self.joint_upper_limits))
        ):
            raise ValueError(
                f"joint_lower_limits {self.joint_lower_limits} exceed joint_upper_limits {self.joint_upper_limits}"
            )


@dataclass
class ModelNodeParams(CommonParams):
    """What each node that runs a model sets for itself."""

    # Give each model node its share when they run on the same machine.
    torch_threads: int = param(0, "torch CPU threads for this node's model (0: one per core)", low=0, high=256)
    diagnostics_rate_hz: float = param(
        1.0, "rate of diagnostic_msgs/DiagnosticArray on /diagnostics", low=0.1, high=50.0
    )


@dataclass
class PerceptionParams(ModelNodeParams):
    """video2act_perception: camera frames -> spatio-motion latents."""

    rate_hz: float = param(2.0, "System 2 updates per second", low=0.01, high=100.0)
    frame_stride: int = param(1, "use every n-th camera frame: a clip spans num_frames * n frames", low=1, high=100)
    max_frame_age_s: float = param(1.0, "skip an update (and warn) when the newest frame is older", low=0.0, high=60.0)
    # Best effort is how cameras publish; reliable loses no frames of large
    # images on one machine (see ../shared/ENVIRONMENT.md).
    image_qos: str = param("sensor_data", "camera subscription QoS", choices=("sensor_data", "reliable"))
    # image_transport's compressed plugin publishes on <image_topic>/compressed.
    image_transport: str = param(
        "raw",
        "raw: sensor_msgs/Image on image_topic; compressed: "
        "sensor_msgs/CompressedImage (jpeg, png) on image_topic/compressed",
        choices=("raw", "compressed"),
    )
    debug_image_topic: str = param(
        "",
        "sensor_msgs/Image of the newest frame with System 2's boundaries (green) "
        "and motion (red) drawn over it, at rate_hz; empty: off",
    )
    camera_pose_tolerance_m: float = param(
        0.02, "warn when the camera sits further than this from its pose in the checkpoint (m)", low=0.0, high=10.0
    )
    camera_pose_tolerance_deg: float = param(
        3.0, "warn when the camera is turned more than this from its pose in the checkpoint (deg)", low=0.0, high=180.0
    )
    camera_pose_timeout_s: float = param(
        10.0, "how long start-up looks for the base-to-camera transform in tf", low=0.0, high=600.0
    )


@dataclass
class PolicyParams(ModelNodeParams):
    """video2act_policy: latents + joint state -> joint trajectory chunks."""

    rate_hz: float = param(30.0, "System 1 chunks per second", low=0.1, high=1000.0)
    action_period_s: float = param(
        0.1, "spacing of a chunk's points: the demonstrations' action period", low=0.001, high=10.0
    )
    max_latents_age_s: float = param(3.0, "older latents make the policy hold", low=0.0, high=3600.0)
    max_joint_state_age_s: float = param(0.5, "an older joint state makes the policy hold", low=0.0, high=60.0)
    num_inference_steps: int = param(5, "System 1 sampling steps per chunk", low=1, high=1000)
    seed: int = param(0, "sampling seed", low=0)
    # System 1 is small: a second thread mostly waits on System 2's.
    torch_threads: int = param(1, "torch CPU threads for System 1 (0: one per core)", low=0, high=256)
    instruction: str = param(
        "",
        "task instruction until one arrives on instruction_topic (empty: the "
        "checkpoint's own, when it was trained on one; only for language-conditioned checkpoints)",
    )
    # How a new chunk joins the running one (video2act_core/control/execution.py).
    execution_strategy: str = param(
        "rtc",
        "replace: a new chunk replaces the running one; temporal_ensemble: "
        "overlapping chunks averaged (ACT); rtc: real-time chunking, the steps that "
        "execute during inference frozen and the rest inpainted toward the running chunk",
        choices=("replace", "temporal_ensemble", "rtc"),
    )
    ensemble_weight_decay: float = param(
        0.01, "temporal_ensemble: weight exp(-m i) of the i-th oldest chunk", low=0.0, high=10.0
    )
    # On a robot the policy starts disarmed: `~/arm` (std_srvs/SetBool)
    # arms it once its inputs are fresh. Simulations start armed.
    start_armed: bool = param(False, "arm at start-up (simulation); a robot is armed with the ~/arm service")
    # Encoders read a little beyond a limit the arm rests on; further out
    # the state is not trusted and the policy holds.
    state_limit_margin: float = param(
        0.05, "measured positions this far outside the limits are still trusted", low=0.0, high=1.0
    )
    # A first point that passes in transit makes the controller jump.
    command_lead_s: float = param(
        0.02, "a command's first point lies at least this far after it is sent (s)", low=0.0, high=1.0
    )
    # An arm that follows lags its setpoint by its servo lag; one that does
    # not follow is stopped. The simulated arms under a random policy lag by
    # 0.16 rad at most (MuJoCo's weak wrist servos), so 0.3 rad flags an arm
    # standing still while the setpoint walks off (up to max_joint_velocity
    # x (action_period_s + follow_lag_s) within the reach bound: 0.4-0.6 rad
    # here) and leaves a following one alone. A 0.1 s lag allowance bound
    # 5 of 57792 values under that random policy on MuJoCo's pick_place (0
    # on the kinematic arm). Gripper joints are not
    # watched: a grasp stops the jaw short of its command by design. The
    # watchdog reads the newest state at each System 1 tick.
    follow_lag_s: float = param(
        0.1,
        "how far behind its setpoint (s) a following arm may be: each point of a "
        "command lies within max_joint_velocity x (its time + this) of the measured state, "
        "or as near as a step at the velocity limit from the setpoint in force gets it",
        low=0.0,
        high=5.0,
    )
    follow_tolerance: float = param(
        0.3,
        "a joint (gripper_joint_names aside) further than this (rad or m) from "
        "every setpoint of the last follow_lag_s is not following",
        low=1e-6,
        high=10.0,
    )
    follow_timeout_s: float = param(
        0.5,
        "an arm not following for this long is stopped at its measured pose; "
        "the policy holds until armed again or reset",
        low=0.01,
        high=60.0,
    )
    robot_description_topic: str = param(
        "robot_description",
        "std_msgs/String URDF (transient local, as robot_state_publisher offers it) "
        "whose joint limits also apply; empty: none",
    )


# What the simulated arms can be asked to do, and the scenes (the paper's
# generalisation splits) their cameras can show.
SIM_TASKS = ("reach", "track", "push", "pick_place", "stack")
SIM_SCENES = ("original", "lighting", "object", "background")


@dataclass
class SimArmParams(CommonParams):
    """video2act_sim arm: a simulated arm speaking the controller topics."""

    backend: str = param(
        "kinematic",
        "simulator: the kinematic arm (the shipped checkpoint's task) or the MuJoCo SO-101 scene",
        choices=("kinematic", "mujoco_so101"),
    )
    task: str = param(
        "reach",
        "reach: a still block (every backend); track: the block slides along an arc and "
        "the gripper must stay on it; push, pick_place (onto a goal disc), stack (onto a second "
        "block): MuJoCo only",
        choices=SIM_TASKS,
    )
    scene: str = param(
        "original",
        "what the camera sees (the generalisation splits): original; lighting (dimmer, "
        "warmer); object (the block recoloured); background (another table)",
        choices=SIM_SCENES,
    )
    joint_state_rate_hz: float = param(50.0, "joint states per second", low=1.0, high=2000.0)
    camera_rate_hz: float = param(15.0, "camera frames per second", low=0.1, high=240.0)
    image_width: int = param(96, "camera image width (px)", low=8, high=4096)
    image_height: int = param(96, "camera image height (px)", low=8, high=4096)
    camera_info_topic: str = param("camera/camera_info", "sensor_msgs/CameraInfo output")
    success_topic: str = param("video2act/task_success", "std_msgs/Bool: one outcome per episode")
    # An episode ends this long after first success, or at the time limit;
    # the arm then resets with the next seed.
    episode_settle_s: float = param(0.5, "an episode ends this long after its first success", low=0.0, high=60.0)
    episode_time_limit_s: float = param(
        0.0,
        "an episode ends unsuccessfully after this long (s); 0: the task's own limit, the one evaluation uses",
        low=0.0,
        high=3600.0,
    )
    # What the hardware does above the policy's envelope: a real arm's servos
    # and controller do not follow a command at any speed.
    max_joint_acceleration: list[float] = param(
        [], "the simulated arm's acceleration limit per joint (rad/s^2; empty: none)", low=1e-6
    )
    hardware_limit_margin: float = param(
        0.1,
        "the simulated arm allows this fraction above max_joint_velocity before it clips a command",
        low=0.0,
        high=10.0,
    )
    # A real camera's imperfections, to test a policy against them.
    camera_noise_std: float = param(
        0.0, "gaussian sensor noise added to each rendered pixel (grey levels)", low=0.0, high=255.0
    )
    camera_flicker: float = param(
        0.0, "each frame's brightness is scaled by 1 +- this (lighting flicker)", low=0.0, high=1.0
    )
    publish_clock: bool = param(False, "publish /clock from the simulation (run the other nodes with use_sim_time)")
    task_instruction: str = param(
        "reach the red square", "the task, as the simulator publishes it on instruction_topic and the expert records it"
    )
    seed: int = param(0, "seed of the first episode; each next episode adds one", low=0)

    def __post_init__(self):
        super().__post_init__()
        if self.max_joint_acceleration and len(self.max_joint_acceleration) != len(self.joint_names):
            raise ValueError(
                f"max_joint_acceleration needs {len(self.joint_names)} values, got {self.max_joint_acceleration}"
            )


NODE_PARAMS: dict[str, type] = {
    "video2act_perception": PerceptionParams,
    "video2act_policy": PolicyParams,
    "video2act_sim_arm": SimArmParams,
}


def param_fields(params_type: type) -> dict[str, tuple[type, Any]]:
    """name -> (python type, default) for every parameter of a params dataclass."""
    hints = typing.get_type_hints(params_type)
    result = {}
    for item in dataclasses.fields(params_type):
        default = item.default_factory() if item.default is dataclasses.MISSING else item.default
        result[item.name] = (hints[item.name], default)
    return result


def param_metadata(params_type: type) -> dict[str, dict[str, Any]]:
    """name -> description, low, high, choices of every parameter."""
    return {item.name: dict(item.metadata) for item in dataclasses.fields(params_type)}


def load_params_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """The `ros__parameters` of every section of a ROS 2 params file."""
    raw = yaml.safe_load(Path(path).read_text()) or {}
    sections = {}
    for name, body in raw.items():
        if not isinstance(body, dict) or set(body) != {"ros__parameters"}:
            raise ValueError(f"{path}: section '{name}' must hold exactly 'ros__parameters'")
        sections[name] = body["ros__parameters"] or {}
    return sections


def absolute_topic(name: str, namespace: str = "") -> str:
    """A topic name as a node in `namespace` resolves it (bags store these)."""
    return name if name.startswith("/") else fully_qualified_name(name, namespace)


def fully_qualified_name(node_name: str, namespace: str = "") -> str:
    namespace = "/" + namespace.strip("/") if namespace.strip("/") else ""
    return f"{namespace}/{node_name}"


def section_matches(section: str, node_name: str, namespace: str = "") -> bool:
    """Whether a params-file section applies to a node, by rclpy's own rule
    (node.cpp: a leading '/' is added and each '/*' becomes '(/\\w+)')."""
    pattern = section if section.startswith("/") else "/" + section
    return re.fullmatch(pattern.replace("/*", r"(/\w+)"), fully_qualified_name(node_name, namespace)) is not None


def node_params(
    params_type: type,
    paths: str | Path | list,
    node_name: str,
    overrides: dict[str, Any] | None = None,
    namespace: str = "",
):
    """Build a node's params the way rcl and rclpy resolve params files:
    every section name gets one slot where it first appears in any file
    (later files update that slot), and the matching slots apply in that
    order, so the last-introduced one wins. Then `overrides`. Unknown keys
    in a node's own sections fail; `/**` may hold other nodes' keys.
    `node_name` `/**` reads the shared section alone: what every node gets."""
    files = paths if isinstance(paths, list) else [paths]
    known = param_fields(params_type)
    if node_name == WILDCARD:
        applies = lambda section: section == WILDCARD
    else:
        applies = lambda section: section_matches(section, node_name, namespace)
    slots: dict[str, dict[str, Any]] = {}
    for path in files:
        for section, section_values in load_params_file(path).items():
            if not applies(section):
                continue
            unknown = set(section_values) - set(known) - {"use_sim_time"}
            if section != WILDCARD and unknown:
                raise ValueError(f"{path}: '{section}' has unknown parameters {sorted(unknown)}")
            # rcl's parser drops an empty list (it has no element type): it
            # neither sets nor clears the parameter.
            slots.setdefault(section, {}).update({k: v for k, v in section_values.items() if v != []})
    values: dict[str, Any] = {}
    for section_values in slots.values():
        values.update({k: v for k, v in section_values.items() if k in known})
    values.update(overrides or {})
    return params_type(**values)


def overrides_document(node_name: str, namespace: str, values: dict[str, Any]) -> dict:
    """A params-file document that sets `values` for one node above any
    section of any earlier file: keyed by its exact fully qualified name."""
    return {fully_qualified_name(node_name, namespace): {"ros__parameters": dict(values)}}
