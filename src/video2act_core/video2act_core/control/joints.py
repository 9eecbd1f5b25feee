"""Splitting commands between the arm's and the gripper's controllers
(picking the policy's joints out of a JointState is data.joint_names')."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class JointGroups:
    """Column indices of the arm's and the gripper's joints in the policy's
    joint order: each group goes to its own controller."""

    arm: tuple[int, ...]
    gripper: tuple[int, ...]

    @classmethod
    def split(cls, joint_names: list[str], gripper_joint_names: list[str]) -> JointGroups:
        gripper = tuple(joint_names.index(name) for name in gripper_joint_names)
        return cls(tuple(i for i in range(len(joint_names)) if i not in gripper), gripper)
