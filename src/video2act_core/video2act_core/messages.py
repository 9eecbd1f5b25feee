"""Field mapping between the core's types and the video2act_msgs/ROS
messages. Duck-typed (no ROS import) so it is shared by both nodes and the
tests, and the core stays importable without ROS."""

from __future__ import annotations

import numpy as np

from video2act_core.control import LatentsSample
from video2act_core.latents import Latents
from video2act_core.trajectory import Trajectory

# Stamps that are passed on travel as integer nanoseconds: float seconds
# near the Unix epoch resolve only ~0.5 us and would not round-trip.


def stamp_to_ns(stamp) -> int:
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def stamp_to_seconds(stamp) -> float:
    return stamp_to_ns(stamp) * 1e-9


def ns_to_stamp(nanoseconds: int, stamp):
    """Fill a builtin_interfaces/Time in place and return it."""
    stamp.sec, stamp.nanosec = divmod(int(nanoseconds), 1_000_000_000)
    return stamp


def fill_latents_message(msg, latents: Latents, model_id: str, sequence: int) -> None:
    msg.model_id = model_id
    msg.sequence = sequence
    msg.spatial_shape = list(latents.spatial.shape)
    msg.spatial_tokens = np.ascontiguousarray(latents.spatial, dtype=np.float32).ravel()
    msg.motion_shape = list(latents.motion.shape)
    msg.motion_tokens = np.ascontiguousarray(latents.motion, dtype=np.float32).ravel()
    msg.motion_energy = float(latents.motion_energy)
    if latents.views is not None:
        msg.image_shape = list(latents.views.shape)
        msg.image_tokens = np.ascontiguousarray(latents.views, dtype=np.float32).ravel()


def latents_from_message(msg) -> LatentsSample:
    """Raises ValueError when a shape does not match its data."""

    def tensor(shape, data, name: str) -> np.ndarray:
        values = np.asarray(data, dtype=np.float32)
        shape = tuple(int(s) for s in shape)
        if int(np.prod(shape)) != values.size or len(shape) != 2:
            raise ValueError(f"{name}: shape {shape} does not match {values.size} values")
        return values.reshape(shape)

    latents = Latents(
        spatial=tensor(msg.spatial_shape, msg.spatial_tokens, "spatial_tokens"),
        motion=tensor(msg.motion_shape, msg.motion_tokens, "motion_tokens"),
        motion_energy=float(msg.motion_energy),
        views=tensor(msg.image_shape, msg.image_tokens, "image_tokens") if len(msg.image_shape) else None,
    )
    return LatentsSample(latents, stamp_to_ns(msg.header.stamp), int(msg.sequence), msg.model_id)


def command_from_chunk(msg) -> tuple[float, Trajectory, np.ndarray] | None:
    """The command an ActionChunk reports as sent: (when it was sent, the
    trajectory, the setpoint it started from); None when nothing was sent."""
    if not msg.positions:
        return None
    joints = len(msg.joint_names)
    positions = np.asarray(msg.positions, dtype=np.float64).reshape(-1, joints)
    velocities = np.asarray(msg.velocities, dtype=np.float64).reshape(-1, joints) if msg.velocities else None
    trajectory = Trajectory(
        stamp_to_seconds(msg.header.stamp), np.asarray(msg.times_from_start, dtype=np.float64), positions, velocities
    )
    return stamp_to_seconds(msg.command_stamp), trajectory, np.asarray(msg.command_origin, dtype=np.float64)
