"""Joint trajectory tracking with ros2_control JointTrajectoryController
semantics, for simulated arms: points are interpolated by time_from_start
from the trajectory's start time, a newer trajectory replaces whatever is
left of the older one from its own start, and after the last point the arm
holds it."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Trajectory:
    start_s: float
    times_s: np.ndarray  # (P,) time_from_start of each point, increasing
    positions: np.ndarray  # (P, J)


class TrajectoryTracker:
    def __init__(self, initial_positions: np.ndarray):
        self._hold = np.asarray(initial_positions, dtype=np.float64).copy()
        self._active: Trajectory | None = None
        # A trajectory whose start lies ahead: the active one runs until then.
        self._pending: Trajectory | None = None
        # Where the arm was commanded to be when the active trajectory began:
        # the controller interpolates from there to the first point.
        self._origin = self._hold.copy()

    def command(self, trajectory: Trajectory, now_s: float) -> None:
        """Accept a trajectory (a start of 0 means 'now', as in the JTC); it
        replaces the rest of the current one from its start time."""
        times = np.asarray(trajectory.times_s, dtype=np.float64)
        positions = np.asarray(trajectory.positions, dtype=np.float64)
        if positions.ndim != 2 or positions.shape[1] != self._hold.shape[0] or len(times) != len(positions):
            raise ValueError(f"trajectory points shaped {positions.shape} for {self._hold.shape[0]} joints")
        if len(times) == 0 or np.any(np.diff(times) <= 0) or times[0] < 0 or not np.all(np.isfinite(positions)):
            raise ValueError("trajectory needs finite positions at strictly increasing, non-negative times")
        start = max(trajectory.start_s, now_s) if trajectory.start_s > 0 else now_s
        self._pending = Trajectory(start, times, positions)
        self.reference(now_s)

    def reference(self, now_s: float) -> np.ndarray:
        """Commanded joint positions at `now_s`."""
        if self._pending is not None and now_s >= self._pending.start_s:
            self._origin = self._follow(self._pending.start_s)
            self._active, self._pending = self._pending, None
        return self._follow(now_s)

    def _follow(self, now_s: float) -> np.ndarray:
        active = self._active
        if active is None or now_s < active.start_s:
            return self._hold.copy()
        elapsed = now_s - active.start_s
        if elapsed >= active.times_s[-1]:
            self._hold = active.positions[-1].copy()
            self._active = None
            return self._hold.copy()
        times = np.concatenate([[0.0], active.times_s])
        points = np.vstack([self._origin, active.positions])
        segment = int(np.searchsorted(times, elapsed, side="right")) - 1
        fraction = (elapsed - times[segment]) / (times[segment + 1] - times[segment])
        return points[segment] + fraction * (points[segment + 1] - points[segment])


class ControllerSet:
    """Trajectory controllers side by side, each owning some joints (say an
    arm's and a gripper's), as ros2_control runs them: a trajectory for one
    leaves the others' joints alone."""

    def __init__(self, initial_positions: np.ndarray):
        self._initial = np.asarray(initial_positions, dtype=np.float64).copy()
        self._controllers: dict[tuple[int, ...], TrajectoryTracker] = {}

    def command(self, trajectory: Trajectory, now_s: float, joints: tuple[int, ...] | None = None) -> None:
        """`trajectory` for the controller of `joints` (all joints when None)."""
        joints = tuple(range(len(self._initial))) if joints is None else tuple(joints)
        if joints not in self._controllers:
            self._controllers[joints] = TrajectoryTracker(self.reference(now_s)[list(joints)])
        self._controllers[joints].command(trajectory, now_s)

    def reference(self, now_s: float) -> np.ndarray:
        """Commanded positions of every joint at `now_s`."""
        reference = self._initial.copy()
        for joints, tracker in self._controllers.items():
            reference[list(joints)] = tracker.reference(now_s)
        return reference
