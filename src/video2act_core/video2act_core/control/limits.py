"""Joint limits the safety envelope enforces: from the params file and the
robot's URDF (`robot_description`), the tighter of the two. A robot is only
driven with a position and a velocity limit for every joint."""

from __future__ import annotations

import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class JointLimits:
    """Per joint, in the policy's joint order; +-inf where a limit is unknown.

    `continuous` marks joints the URDF declares continuous: they need no
    position limits.
    """

    joint_names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    max_velocity: np.ndarray
    continuous: np.ndarray

    @classmethod
    def unknown(cls, joint_names: list[str]) -> JointLimits:
        joints = len(joint_names)
        return cls(
            tuple(joint_names),
            np.full(joints, -np.inf),
            np.full(joints, np.inf),
            np.full(joints, np.inf),
            np.zeros(joints, dtype=bool),
        )

    @classmethod
    def from_lists(
        cls, joint_names: list[str], lower: list[float], upper: list[float], max_velocity: list[float]
    ) -> JointLimits:
        """Limits from the params file's lists; an empty list leaves that limit unknown.

        Raises:
            ValueError: a list has the wrong length, lower exceeds upper, or a
                velocity is not positive.
        """
        limits = cls.unknown(joint_names)
        joints = len(joint_names)

        def array(name: str, values: list[float], fallback: np.ndarray) -> np.ndarray:
            if not values:
                return fallback
            if len(values) != joints:
                raise ValueError(f"{name} needs {joints} values (one per joint), got {len(values)}")
            return np.asarray(values, dtype=np.float64)

        result = cls(
            limits.joint_names,
            array("joint_lower_limits", lower, limits.lower),
            array("joint_upper_limits", upper, limits.upper),
            array("max_joint_velocity", max_velocity, limits.max_velocity),
            limits.continuous,
        )
        if np.any(result.lower > result.upper):
            raise ValueError("joint_lower_limits exceed joint_upper_limits")
        if np.any(~(result.max_velocity > 0)):
            raise ValueError("max_joint_velocity must be positive")
        return result

    @classmethod
    def from_urdf(cls, urdf: str, joint_names: list[str]) -> JointLimits:
        """The `<limit>` of each of our joints in a URDF; joints it lacks stay unknown.

        Raises:
            ValueError: the text is not XML.
        """
        try:
            root = ElementTree.fromstring(urdf)
        except ElementTree.ParseError as error:
            raise ValueError(f"robot_description is not valid URDF XML: {error}") from error
        limits = cls.unknown(joint_names)
        lower, upper, velocity, continuous = (
            limits.lower.copy(),
            limits.upper.copy(),
            limits.max_velocity.copy(),
            limits.continuous.copy(),
        )
        joints = {joint.get("name"): joint for joint in root.iter("joint")}
        for i, name in enumerate(joint_names):
            joint = joints.get(name)
            if joint is None:
                continue
            continuous[i] = joint.get("type") == "continuous"
            limit = joint.find("limit")
            if limit is None:
                continue
            if joint.get("type") in ("revolute", "prismatic"):
                lower[i], upper[i] = float(limit.get("lower", 0.0)), float(limit.get("upper", 0.0))
            if float(limit.get("velocity", 0.0)) > 0:
                velocity[i] = float(limit.get("velocity"))
        return cls(limits.joint_names, lower, upper, velocity, continuous)

    def tighter(self, other: JointLimits) -> JointLimits:
        """Both sets at once: the higher lower bound, the lower upper one.

        Raises:
            ValueError: the two leave no position between them for a joint.
        """
        lower, upper = np.maximum(self.lower, other.lower), np.minimum(self.upper, other.upper)
        empty = [name for name, low, high in zip(self.joint_names, lower, upper) if low > high]
        if empty:
            raise ValueError(f"the params file's and the URDF's limits leave no range for joints {empty}")
        return JointLimits(
            self.joint_names,
            lower,
            upper,
            np.minimum(self.max_velocity, other.max_velocity),
            self.continuous | other.continuous,
        )

    def missing(self) -> str:
        """Why these limits cannot drive a robot, or '' when they can."""
        no_position = [
            name
            for name, low, high, free in zip(self.joint_names, self.lower, self.upper, self.continuous)
            if not free and not (np.isfinite(low) and np.isfinite(high))
        ]
        no_velocity = [name for name, v in zip(self.joint_names, self.max_velocity) if not np.isfinite(v)]
        problems = []
        if no_position:
            problems.append(f"no position limits for {no_position}")
        if no_velocity:
            problems.append(f"no velocity limits for {no_velocity}")
        if not problems:
            return ""
        return (
            "; ".join(problems) + ": set joint_lower_limits, joint_upper_limits and max_joint_velocity, "
            "or publish a URDF on robot_description"
        )
