"""Where the camera sat relative to the robot base: recorded with the
demonstrations and the checkpoint, compared with the robot's transform
tree at start-up.

A policy trained from one camera pose sees a different world from another;
a bumped or remounted camera is a silent cause of failures on a robot. The
pose travels as the bag's `/tf_static` (what `ros2 bag record` stores from
robot_state_publisher and static_transform_publisher), is composed here
from parent/child links without tf2, and is kept in the checkpoint's
metadata as `camera_pose`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _quaternion_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ax, ay, az, aw = a
    bx, by, bz, bw = b
    return np.array(
        [
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
            aw * bw - ax * bx - ay * by - az * bz,
        ]
    )


def _rotate(quaternion: np.ndarray, vector: np.ndarray) -> np.ndarray:
    conjugate = quaternion * np.array([-1.0, -1.0, -1.0, 1.0])
    return _quaternion_multiply(_quaternion_multiply(quaternion, np.append(vector, 0.0)), conjugate)[:3]


@dataclass(frozen=True)
class CameraPose:
    """`child` (the camera frame) expressed in `parent` (the base frame), as
    a TransformStamped says it: translation in metres, rotation as a unit
    quaternion (x, y, z, w)."""

    parent: str
    child: str
    translation: tuple[float, float, float]
    rotation: tuple[float, float, float, float]

    def __post_init__(self):
        rotation = np.asarray(self.rotation, np.float64)
        norm = np.linalg.norm(rotation)
        if not (np.all(np.isfinite(rotation)) and np.all(np.isfinite(self.translation)) and norm > 1e-9):
            raise ValueError(f"camera pose {self.parent} -> {self.child} is not a finite rigid transform")
        object.__setattr__(self, "translation", tuple(float(v) for v in self.translation))
        object.__setattr__(self, "rotation", tuple(float(v) for v in rotation / norm))

    def then(self, other: CameraPose) -> CameraPose:
        """This transform followed by `other` (whose parent is our child)."""
        q = np.asarray(self.rotation)
        translation = np.asarray(self.translation) + _rotate(q, np.asarray(other.translation))
        return CameraPose(self.parent, other.child, translation, _quaternion_multiply(q, np.asarray(other.rotation)))

    def inverse(self) -> CameraPose:
        conjugate = np.asarray(self.rotation) * np.array([-1.0, -1.0, -1.0, 1.0])
        return CameraPose(self.child, self.parent, -_rotate(conjugate, np.asarray(self.translation)), conjugate)

    def difference(self, other: CameraPose) -> tuple[float, float]:
        """(metres, radians) between the two poses of the camera."""
        distance = float(np.linalg.norm(np.subtract(self.translation, other.translation)))
        dot = abs(float(np.dot(self.rotation, other.rotation)))
        return distance, 2.0 * float(np.arccos(min(1.0, dot)))

    def to_dict(self) -> dict:
        return {
            "parent": self.parent,
            "child": self.child,
            "translation": list(self.translation),
            "rotation_xyzw": list(self.rotation),
        }

    @classmethod
    def from_transform_stamped(cls, message) -> CameraPose:
        """From a geometry_msgs/TransformStamped (rclpy's or a bag reader's)."""
        t, q = message.transform.translation, message.transform.rotation
        return cls(
            message.header.frame_id.lstrip("/"),
            message.child_frame_id.lstrip("/"),
            (t.x, t.y, t.z),
            (q.x, q.y, q.z, q.w),
        )

    @classmethod
    def from_dict(cls, raw: dict) -> CameraPose:
        return cls(raw["parent"], raw["child"], tuple(raw["translation"]), tuple(raw["rotation_xyzw"]))


def compose_static_tree(links: list[CameraPose], base_frame: str, camera_frame: str) -> CameraPose | None:
    """`camera_frame` in `base_frame` through the parent -> child links of a
    static transform tree, or None when the two are not connected."""
    parent_of = {link.child: link for link in links}

    def from_root(frame: str) -> CameraPose:
        """`frame` expressed in the root of its tree."""
        pose = CameraPose(frame, frame, (0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 1.0))
        seen = {frame}
        while pose.parent in parent_of:
            link = parent_of[pose.parent]
            if link.parent in seen:  # a cycle: not a tree
                break
            seen.add(link.parent)
            pose = link.then(pose)
        return pose

    base, camera = from_root(base_frame), from_root(camera_frame)
    if base.parent != camera.parent:
        return None
    return base.inverse().then(camera)


def pose_mismatch(expected: CameraPose, measured: CameraPose, tolerance_m: float, tolerance_rad: float) -> str | None:
    """A one-line warning when the camera moved beyond the tolerances, else None."""
    if (expected.parent, expected.child) != (measured.parent, measured.child):
        return (
            f"camera pose frames differ: the checkpoint has {expected.parent} -> {expected.child}, "
            f"the robot {measured.parent} -> {measured.child}"
        )
    distance, angle = expected.difference(measured)
    if distance <= tolerance_m and angle <= tolerance_rad:
        return None
    return (
        f"camera {measured.child} moved since the demonstrations: {distance * 100:.1f} cm and "
        f"{np.degrees(angle):.1f} deg from the pose in the checkpoint "
        f"(tolerance {tolerance_m * 100:.1f} cm, {np.degrees(tolerance_rad):.1f} deg)"
    )


def demonstrations_camera_pose(
    poses: list[CameraPose | None], tolerance_m: float, tolerance_rad: float
) -> tuple[CameraPose | None, str]:
    """The one camera pose a set of demonstrations was recorded from, for
    the checkpoint, or None and why: some episodes record none (LeRobot
    datasets, bags without /tf_static), or the camera moved between them."""
    known = [pose for pose in poses if pose is not None]
    if not known:
        return None, "no episode records the camera pose (/tf_static)"
    if len(known) < len(poses):
        return None, f"{len(poses) - len(known)} of {len(poses)} episodes record no camera pose"
    moved = [pose_mismatch(known[0], pose, tolerance_m, tolerance_rad) for pose in known[1:]]
    moved = [reason for reason in moved if reason]
    if moved:
        return None, f"the camera pose differs between episodes ({len(moved)} of {len(known)}): {moved[0]}"
    return known[0], ""
