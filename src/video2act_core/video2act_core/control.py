"""System 1 control step with its safety envelope, free of ROS.

Each tick the policy node hands the newest latents and joint state to
`ChunkPlanner.plan`, which either returns a constrained chunk of joint
targets or says why the arm must hold position. Nothing here raises on bad
input: a robot loop must keep running and hold.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from video2act_core.policy import Latents, System1


class Mode(IntEnum):
    # Values match video2act_msgs/ActionChunk's MODE_* constants.
    ACTIVE = 0
    HOLD = 1
    REJECTED = 2


class JointStateError(ValueError):
    pass


@dataclass
class JointStateSample:
    positions: np.ndarray  # in the policy's joint order
    stamp_s: float


@dataclass
class LatentsSample:
    latents: Latents
    stamp_ns: int  # capture time of the newest frame used
    sequence: int
    model_id: str


@dataclass
class Plan:
    mode: Mode
    reason: str
    positions: np.ndarray | None  # (H, J) targets when ACTIVE
    latents: LatentsSample | None
    latents_age_s: float
    inference_s: float


def reorder_joint_state(names: list[str], positions: list[float], joint_names: list[str]) -> np.ndarray:
    """Positions in `joint_names` order from a JointState that may carry
    other joints too (grippers, a mobile base) in any order."""
    if len(names) != len(positions):
        raise JointStateError(f"{len(names)} joint names but {len(positions)} positions")
    index = {name: i for i, name in enumerate(names)}
    missing = [name for name in joint_names if name not in index]
    if missing:
        raise JointStateError(f"joint state lacks joints {missing} (has {list(names)})")
    ordered = np.array([positions[index[name]] for name in joint_names], dtype=np.float64)
    if not np.all(np.isfinite(ordered)):
        raise JointStateError(f"joint state has non-finite positions {ordered.tolist()}")
    return ordered


@dataclass
class SafetyLimits:
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None
    max_velocity: np.ndarray | None = None

    @classmethod
    def from_lists(cls, joints: int, lower: list[float], upper: list[float], max_velocity: list[float]) -> "SafetyLimits":
        def as_array(name: str, values: list[float]) -> np.ndarray | None:
            if not values:
                return None
            if len(values) != joints:
                raise ValueError(f"{name} needs {joints} values (one per joint), got {len(values)}")
            return np.asarray(values, dtype=np.float64)

        limits = cls(as_array("joint_lower_limits", lower), as_array("joint_upper_limits", upper),
                     as_array("max_joint_velocity", max_velocity))
        if limits.lower is not None and limits.upper is not None and np.any(limits.lower > limits.upper):
            raise ValueError("joint_lower_limits exceed joint_upper_limits")
        if limits.max_velocity is not None and np.any(limits.max_velocity <= 0):
            raise ValueError("max_joint_velocity must be positive")
        return limits

    def constrain(self, chunk: np.ndarray, current: np.ndarray, period_s: float) -> np.ndarray:
        """Clamp to position limits and bound each step's change by
        max_velocity * period, starting from the current position."""
        if self.lower is not None or self.upper is not None:
            chunk = np.clip(chunk, self.lower, self.upper)
        if self.max_velocity is None:
            return chunk
        step = self.max_velocity * period_s
        constrained = np.empty_like(chunk)
        previous = current
        for i, target in enumerate(chunk):
            previous = previous + np.clip(target - previous, -step, step)
            constrained[i] = previous
        return constrained


class ChunkPlanner:
    def __init__(
        self,
        system1: System1,
        limits: SafetyLimits,
        action_period_s: float,
        max_latents_age_s: float,
        max_joint_state_age_s: float,
        num_inference_steps: int | None = None,
    ):
        self.system1 = system1
        self.limits = limits
        self.action_period_s = action_period_s
        self.max_latents_age_s = max_latents_age_s
        self.max_joint_state_age_s = max_joint_state_age_s
        self.num_inference_steps = num_inference_steps
        self._token_width = system1.config.context_dim

    def check_latents(self, sample: LatentsSample) -> str:
        """Why these latents cannot be used, or '' when they can."""
        if sample.model_id != self.system1.model_id:
            return f"latents from model '{sample.model_id}', policy runs '{self.system1.model_id}'"
        for name, tokens in (("spatial", sample.latents.spatial), ("motion", sample.latents.motion)):
            if tokens.ndim != 2 or tokens.shape[1] != self._token_width or tokens.shape[0] == 0:
                return f"{name} tokens shaped {tokens.shape}, expected (N, {self._token_width})"
            if not np.all(np.isfinite(tokens)):
                return f"{name} tokens contain NaN or Inf"
        return ""

    def plan(self, latents: LatentsSample | None, state: JointStateSample | None, now_s: float) -> Plan:
        def hold(reason: str, age: float = float("nan")) -> Plan:
            return Plan(Mode.HOLD, reason, None, latents, age, 0.0)

        if state is None:
            return hold("no joint state received")
        if now_s - state.stamp_s > self.max_joint_state_age_s:
            return hold(f"joint state is {now_s - state.stamp_s:.2f} s old (max {self.max_joint_state_age_s})")
        if latents is None:
            return hold("no latents from perception since start-up or the last reset")
        age = now_s - latents.stamp_ns * 1e-9
        if age > self.max_latents_age_s:
            return hold(f"latents are {age:.2f} s old (max {self.max_latents_age_s})", age)
        problem = self.check_latents(latents)
        if problem:
            return hold(problem, age)

        started = time.perf_counter()
        chunk = self.system1.act(latents.latents, state.positions, self.num_inference_steps)
        inference = time.perf_counter() - started
        if not np.all(np.isfinite(chunk)):
            return Plan(Mode.REJECTED, "action head produced NaN or Inf", None, latents, age, inference)
        targets = self.limits.constrain(chunk, state.positions, self.action_period_s)
        return Plan(Mode.ACTIVE, "", targets, latents, age, inference)
