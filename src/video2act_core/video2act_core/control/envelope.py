"""The safety envelope: every command the policy publishes, chunks and holds
alike, comes out of `SafetyEnvelope`, so none is ever non-finite, outside
the position limits, or a step above the velocity limit from the previous
command.

"The previous command" is what the controller is tracking: the envelope
models joint_trajectory_controller (a trajectory replaces the running one on
receipt and is interpolated from the setpoint at that moment), so a new
chunk starts from where the last one has the setpoint now, not from the
measured state (the arm lags its setpoint; starting from the measurement
made the executed setpoint exceed the limit at chunk seams). Only with no
command in force (start-up, a reset, re-arming) does a chunk start from the
measured state, and only from a trusted one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from video2act_core.control.limits import JointLimits
from video2act_core.trajectory import Trajectory, TrajectoryTracker

# Rounding slack for the envelope's own checks.
TOLERANCE = 1e-9


@dataclass
class JointCommand:
    """Points for the controller, timed from receipt (a zero header stamp)."""

    positions: np.ndarray  # (P, J)
    velocities: np.ndarray  # (P, J), consistent with the positions
    times_s: np.ndarray  # (P,) time_from_start
    limited: int  # values of the requested chunk the envelope changed
    hold: bool
    origin: np.ndarray  # (J,) the setpoint it starts from: the command in force, or the trusted measured state
    issued_s: float  # when it takes over from the command in force (published, started on receipt)


def point_velocities(start: np.ndarray, positions: np.ndarray, period_s: float) -> np.ndarray:
    """Velocities for positions reached every `period_s` from `start`: the
    smaller of the two adjacent segment speeds (zero where the direction
    turns), and zero at the last point so a chunk that is not followed by
    another ends at rest. No point is faster than its segments.

    Args:
        start: (J,) the setpoint the first segment leaves from.
        positions: (P, J).
    Returns:
        (P, J) velocities.
    """
    segments = np.diff(np.vstack([start, positions]), axis=0) / period_s  # (P, J)
    velocities = np.zeros_like(positions)
    before, after = segments[:-1], segments[1:]
    same_direction = np.sign(before) == np.sign(after)
    velocities[:-1] = np.where(same_direction, np.sign(before) * np.minimum(np.abs(before), np.abs(after)), 0.0)
    return velocities


class SafetyEnvelope:
    """Turns requested joint targets into commands that respect the limits,
    and remembers the command in force to bound the next one."""

    def __init__(self, limits: JointLimits, period_s: float, state_margin: float = 0.05):
        self.limits = limits
        self.period_s = period_s
        self.state_margin = state_margin
        self._tracker: TrajectoryTracker | None = None

    def state_problem(self, positions: np.ndarray) -> str:
        """Why a measured state is not trusted to plan from, or ''."""
        if positions.shape != self.limits.lower.shape or not np.all(np.isfinite(positions)):
            return f"joint state {positions.tolist()} is not finite"
        outside = (positions < self.limits.lower - self.state_margin) | (positions > self.limits.upper + self.state_margin)
        if np.any(outside):
            joints = [name for name, out in zip(self.limits.joint_names, outside) if out]
            return f"joint state outside the limits for {joints}: {positions[outside].tolist()}"
        return ""

    def setpoint(self, now_s: float) -> np.ndarray | None:
        """Where the command in force has the controller's setpoint at `now_s`."""
        return None if self._tracker is None else self._tracker.reference(now_s)

    def forget(self) -> None:
        """No command in force any more (a reset or re-arming): the next
        chunk starts from the measured state."""
        self._tracker = None

    def chunk(self, targets: np.ndarray, state: np.ndarray, now_s: float) -> JointCommand:
        """Clamp `targets` (H, J) to the position limits and bound each step
        by max_velocity * period, starting from the setpoint in force at
        `now_s`, the moment the command is published (or from the trusted
        measured `state`, clamped, when none is in force)."""
        start = self.setpoint(now_s)
        if start is None:
            start = np.clip(state, self.limits.lower, self.limits.upper)
        requested = np.where(np.isfinite(targets), targets, start)
        clamped = np.clip(requested, self.limits.lower, self.limits.upper)
        step = self.limits.max_velocity * self.period_s
        positions = np.empty_like(clamped)
        previous = start
        for i, target in enumerate(clamped):
            previous = np.clip(previous + np.clip(target - previous, -step, step), self.limits.lower, self.limits.upper)
            positions[i] = previous
        limited = int(np.sum(np.abs(positions - targets) > TOLERANCE) if np.all(np.isfinite(targets))
                      else targets.size)
        return self._issue(start, positions, limited, hold=False, now_s=now_s)

    def hold(self, now_s: float) -> JointCommand | None:
        """Stop at the setpoint in force, never at a measured state (which may
        be the very thing that is wrong); None when nothing is in force."""
        start = self.setpoint(now_s)
        if start is None:
            return None
        return self._issue(start, start[None].copy(), 0, hold=True, now_s=now_s)

    def _issue(self, start: np.ndarray, positions: np.ndarray, limited: int, hold: bool, now_s: float) -> JointCommand:
        times = self.period_s * np.arange(1, len(positions) + 1)
        command = JointCommand(positions, point_velocities(start, positions, self.period_s), times, limited, hold,
                               start.copy(), now_s)
        if self._tracker is None:
            self._tracker = TrajectoryTracker(start)
        self._tracker.command(Trajectory(0.0, times, positions), now_s)
        return command


def envelope_violations(command_positions: np.ndarray, command_velocities: np.ndarray, times_s: np.ndarray,
                        previous_setpoint: np.ndarray | None, limits: JointLimits, period_s: float,
                        tolerance: float = 1e-6) -> list[str]:
    """Everything wrong with a published command, for tests and monitors:
    non-finite values, positions outside the limits, steps (from the
    previous command's setpoint, then point to point) or point velocities
    above max_velocity. Empty when the command is inside the envelope."""
    problems = []
    if not (np.all(np.isfinite(command_positions)) and np.all(np.isfinite(command_velocities))):
        return ["non-finite values"]
    if np.any(command_positions < limits.lower - tolerance) or np.any(command_positions > limits.upper + tolerance):
        problems.append("position outside the limits")
    path = command_positions if previous_setpoint is None else np.vstack([previous_setpoint, command_positions])
    durations = np.diff(np.concatenate([[0.0], times_s]))[-len(path) + 1:] if len(path) > 1 else np.array([])
    if len(path) > 1:
        speeds = np.abs(np.diff(path, axis=0)) / durations[:, None]
        if np.any(speeds > limits.max_velocity * (1 + tolerance) + tolerance):
            problems.append(f"step speed {speeds.max():.4f} above the velocity limit")
    if np.any(np.abs(command_velocities) > limits.max_velocity * (1 + tolerance) + tolerance):
        problems.append("point velocity above the velocity limit")
    return problems
