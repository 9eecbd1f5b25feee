"""What an episode is, whatever it was recorded in (a rosbag2 directory, a
LeRobot dataset): its camera frames, joint states and commands in the
policy's joint order, and the topics that carry them in a bag."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from video2act_core.camera_pose import CameraPose
from video2act_core.params import absolute_topic


class EpisodeError(RuntimeError):
    """A recording (bag or dataset) that cannot be read or lacks what an episode needs."""


@dataclass(frozen=True)
class EpisodeTopics:
    """Topic names as a bag stores them: absolute (relative names of the
    params file are resolved in the root namespace, as `ros2 bag record`
    of a root-namespace stack would name them)."""

    image: str
    joint_states: str
    trajectory: str
    success: str
    instruction: str = ""  # std_msgs/String task instruction; empty: none recorded or read
    extra_cameras: tuple[str, ...] = ()  # more cameras' images (a wrist camera), for image tokens

    def __post_init__(self):
        for name in ("image", "joint_states", "trajectory", "success", "instruction"):
            if getattr(self, name):
                object.__setattr__(self, name, absolute_topic(getattr(self, name)))
        object.__setattr__(self, "extra_cameras", tuple(absolute_topic(t) for t in self.extra_cameras))


@dataclass
class CameraRecording:
    """One extra camera's frames in an episode."""

    stamps_ns: np.ndarray  # (N,) int64, increasing
    images: np.ndarray  # (N, H, W, 3) uint8 RGB


@dataclass
class Episode:
    image_stamps_ns: np.ndarray  # (N,) int64, increasing
    images: np.ndarray  # (N, H, W, 3) uint8 RGB
    state_stamps_ns: np.ndarray  # (M,)
    states: np.ndarray  # (M, J) in joint_names order
    command_stamps_ns: np.ndarray  # (K,)
    commands: np.ndarray  # (K, J): the first point of each commanded trajectory
    success: bool
    camera_pose: CameraPose | None = None  # camera frame in base frame, from /tf_static
    instruction: str = ""  # the task instruction recorded with it ("" when none)
    extra_cameras: list[CameraRecording] = field(default_factory=list)  # in EpisodeTopics.extra_cameras order
