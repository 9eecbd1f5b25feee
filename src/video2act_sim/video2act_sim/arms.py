"""The simulated arm of a backend: the kinematic arm (`arm.py`) or the
MuJoCo SO-101 scene (`mujoco_arm.py`, built on the kinematic arm's
servos and tasks), one factory over both."""

from __future__ import annotations

from video2act_sim.arm import HardwareLimits, KinematicArm, SimArm


def make_arm(
    backend: str,
    joints: int,
    seed: int,
    hardware: HardwareLimits | None = None,
    task: str = "reach",
    scene: str = "original",
) -> SimArm:
    """The simulated arm of a backend, 'kinematic' or 'mujoco_so101', set up for `task` in `scene`."""
    if backend == "kinematic":
        return KinematicArm(joints, seed=seed, hardware=hardware, task=task, scene=scene)
    if backend == "mujoco_so101":
        from video2act_sim.mujoco_arm import MujocoArm  # MuJoCo loads only for its backend

        return MujocoArm(joints, seed=seed, hardware=hardware, task=task, scene=scene)
    raise ValueError(f"unknown simulator backend '{backend}' (kinematic, mujoco_so101)")
