"""Joint names: picking and ordering the policy's joints out of a robot's
JointState, and splitting commands between the arm's and the gripper's
controllers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


class JointStateError(ValueError):
    pass


def reorder_joint_state(names: list[str], positions: list[float], joint_names: list[str]) -> np.ndarray:
    """Positions in `joint_names` order from a JointState that may carry
    other joints too (grippers, a mobile base) in any order.

    Raises:
        JointStateError: names and positions differ in length, a name
            repeats (which value is meant?), a joint is missing, or one of
            ours is not finite.
    """
    if len(names) != len(positions):
        raise JointStateError(f"{len(names)} joint names but {len(positions)} positions")
    index = {name: i for i, name in enumerate(names)}
    if len(index) != len(names):
        repeated = sorted({name for name in names if names.count(name) > 1})
        raise JointStateError(f"joint state names joints {repeated} more than once")
    missing = [name for name in joint_names if name not in index]
    if missing:
        raise JointStateError(f"joint state lacks joints {missing} (has {list(names)})")
    ordered = np.array([positions[index[name]] for name in joint_names], dtype=np.float64)
    if not np.all(np.isfinite(ordered)):
        raise JointStateError(f"joint state has non-finite positions {ordered.tolist()}")
    return ordered


@dataclass(frozen=True)
class JointGroups:
    """Column indices of the arm's and the gripper's joints in the policy's
    joint order: each group goes to its own controller."""

    arm: tuple[int, ...]
    gripper: tuple[int, ...]

    @classmethod
    def split(cls, joint_names: list[str], gripper_joint_names: list[str]) -> "JointGroups":
        gripper = tuple(joint_names.index(name) for name in gripper_joint_names)
        return cls(tuple(i for i in range(len(joint_names)) if i not in gripper), gripper)
