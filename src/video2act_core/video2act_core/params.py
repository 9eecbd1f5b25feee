"""Node parameters: one dataclass per node, the single schema for both ROS
parameter declarations and plain-Python use of `config/*.yaml`.

The YAML follows the ROS 2 params-file layout: shared facts (topics, joint
names, checkpoint) live under `/**` so every node reads the same value;
node-specific values under the node's name.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

WILDCARD = "/**"


@dataclass
class CommonParams:
    """Facts every node of the stack shares (under `/**` in the YAML)."""

    joint_names: list[str] = field(
        default_factory=lambda: ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
    )
    image_topic: str = "/camera/image_raw"
    joint_states_topic: str = "/joint_states"
    latents_topic: str = "/video2act/latents"
    trajectory_topic: str = "/arm_controller/joint_trajectory"
    action_chunk_topic: str = "/video2act/action_chunk"
    # std_msgs/Empty: a new episode starts (a sim or scene reset). Perception
    # drops its buffered frames and the policy the latents made before it,
    # as LeRobot's policy.reset() does between episodes.
    reset_topic: str = "/video2act/reset"
    # Relative paths resolve against the `video2act` package share directory.
    checkpoint_path: str = "checkpoints/sim_demo"
    device: str = "auto"
    dtype: str = "float32"


@dataclass
class ModelNodeParams(CommonParams):
    """What each node that runs a model sets for itself."""

    # torch CPU threads for this node's model; 0: one per core. Give each
    # model node its share when they run on the same machine.
    torch_threads: int = 0


@dataclass
class PerceptionParams(ModelNodeParams):
    """video2act_perception: camera frames -> spatio-motion latents."""

    rate_hz: float = 2.0
    # Use every n-th camera frame: the clip then spans num_frames * n frames.
    frame_stride: int = 1
    # Skip an update (and warn) when the newest frame is older than this.
    max_frame_age_s: float = 1.0
    # 'sensor_data' (best effort, as cameras publish) or 'reliable'.
    image_qos: str = "sensor_data"


@dataclass
class PolicyParams(ModelNodeParams):
    """video2act_policy: latents + joint state -> joint trajectory chunks."""

    rate_hz: float = 10.0
    # Spacing of the chunk's points: the demonstrations' action period.
    action_period_s: float = 0.1
    # Older latents or joint states than these make the node hold position.
    max_latents_age_s: float = 3.0
    max_joint_state_age_s: float = 0.5
    num_inference_steps: int = 8
    seed: int = 0
    # Safety envelope, one value per joint (empty: no limit).
    joint_lower_limits: list[float] = field(default_factory=list)
    joint_upper_limits: list[float] = field(default_factory=list)
    max_joint_velocity: list[float] = field(default_factory=list)


@dataclass
class SimArmParams(CommonParams):
    """video2act_sim arm: a simulated arm speaking the controller topics."""

    # 'kinematic' (fast, the shipped checkpoint's task) or 'mujoco_so101'.
    backend: str = "kinematic"

    joint_state_rate_hz: float = 50.0
    camera_rate_hz: float = 15.0
    image_width: int = 96
    image_height: int = 96
    camera_info_topic: str = "/camera/camera_info"
    # One std_msgs/Bool per episode: its outcome.
    success_topic: str = "/video2act/task_success"
    # An episode ends this long after first success, or at the time limit;
    # the arm then resets with the next seed.
    episode_settle_s: float = 0.5
    episode_time_limit_s: float = 8.0
    # Publish /clock from the simulation (run the other nodes with use_sim_time).
    publish_clock: bool = False
    seed: int = 0


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


def load_params_file(path: str | Path) -> dict[str, dict[str, Any]]:
    """The `ros__parameters` of every section of a ROS 2 params file."""
    raw = yaml.safe_load(Path(path).read_text()) or {}
    sections = {}
    for name, body in raw.items():
        if not isinstance(body, dict) or set(body) != {"ros__parameters"}:
            raise ValueError(f"{path}: section '{name}' must hold exactly 'ros__parameters'")
        sections[name] = body["ros__parameters"] or {}
    return sections


def node_params(params_type: type, path: str | Path, node_name: str, overrides: dict[str, Any] | None = None):
    """Build a node's params the way rclpy resolves a params file: defaults,
    then `/**`, then the node's section, then overrides. Unknown keys fail."""
    sections = load_params_file(path)
    known = param_fields(params_type)
    values: dict[str, Any] = {}
    values.update({k: v for k, v in sections.get(WILDCARD, {}).items() if k in known})
    section = sections.get(node_name, {})
    unknown = set(section) - set(known)
    if unknown:
        raise ValueError(f"{path}: '{node_name}' has unknown parameters {sorted(unknown)}")
    values.update(section)
    values.update(overrides or {})
    return params_type(**values)
