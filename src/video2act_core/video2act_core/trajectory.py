"""Joint trajectory tracking with ros2_control joint_trajectory_controller
semantics, for the simulated arms and for the safety envelope's model of
the controller.

As JTC reads a JointTrajectory on Jazzy (ros2_controllers 4.42.1,
joint_trajectory_controller.cpp and trajectory.cpp), with
`interpolate_from_desired_state` as config/robots/*_controllers.yaml set it:
a trajectory replaces the running one on receipt, whatever its stamp (zero:
the points count from receipt). The setpoint at that moment is the start
of a segment to the first point, while that point still lies ahead (a
stamp in the future just stretches that segment); once it has passed, the
setpoint follows the segment between the two points around now, with no
segment from the old setpoint: a trajectory received after its first point
makes the setpoint jump onto it. With velocities the points are joined by
cubic Hermite splines, without them linearly; after the last point the
controller holds it (keeping its velocity as the desired one). A trajectory with a nonzero stamp whose last point
lies in the past is rejected (JTC: strictly before now); so are empty,
non-increasing and, stricter than JTC, non-finite ones.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np


class TrajectoryRejected(ValueError):
    """A trajectory the controller refuses, and why."""


@dataclass
class Trajectory:
    start_s: float  # header stamp; 0 means on receipt
    times_s: np.ndarray  # (P,) time_from_start of each point, increasing
    positions: np.ndarray  # (P, J)
    velocities: np.ndarray | None = None  # (P, J); None: linear interpolation


@dataclass
class _Spline:
    times: np.ndarray  # (K,) absolute: the take-over, then the points
    positions: np.ndarray  # (K, J)
    velocities: np.ndarray | None  # (K, J) or None for linear segments


class TrajectoryTracker:
    def __init__(self, initial_positions: np.ndarray):
        self._hold = np.asarray(initial_positions, dtype=np.float64).copy()
        # After its last point JTC keeps commanding that point's velocity as
        # the desired one (a take-over starts with it); ours end at rest.
        self._hold_velocity = np.zeros_like(self._hold)
        self._spline: _Spline | None = None

    def command(self, trajectory: Trajectory, now_s: float) -> None:
        """Accept a trajectory received at `now_s`.

        Raises:
            TrajectoryRejected: malformed, non-finite, or every point in the past.
        """
        times = np.asarray(trajectory.times_s, dtype=np.float64)
        positions = np.asarray(trajectory.positions, dtype=np.float64)
        velocities = None if trajectory.velocities is None else np.asarray(trajectory.velocities, dtype=np.float64)
        joints = self._hold.shape[0]
        if positions.ndim != 2 or positions.shape[1] != joints or len(times) != len(positions):
            raise TrajectoryRejected(f"trajectory points shaped {positions.shape} for {joints} joints")
        if velocities is not None and velocities.shape != positions.shape:
            raise TrajectoryRejected(f"velocities shaped {velocities.shape}, positions {positions.shape}")
        if (
            len(times) == 0
            or np.any(np.diff(times) <= 0)
            or times[0] < 0
            or not np.all(np.isfinite(positions))
            or (velocities is not None and not np.all(np.isfinite(velocities)))
        ):
            raise TrajectoryRejected("trajectory needs finite points at strictly increasing, non-negative times")
        start = trajectory.start_s if trajectory.start_s > 0 else now_s
        absolute = start + times
        if trajectory.start_s > 0 and absolute[-1] < now_s:
            raise TrajectoryRejected(f"every point lies in the past (last {now_s - absolute[-1]:.3f} s ago)")
        if absolute[0] <= now_s:
            # Received after its first point: JTC samples between the
            # message's own points, from the setpoint nothing is kept.
            self.sample(now_s)
            self._spline = _Spline(absolute, positions, velocities)
            return
        origin, origin_velocity = self.sample(now_s)
        self._spline = _Spline(
            np.concatenate([[now_s], absolute]),
            np.vstack([origin, positions]),
            None if velocities is None else np.vstack([origin_velocity, velocities]),
        )

    def reference(self, now_s: float) -> np.ndarray:
        """Commanded joint positions at `now_s`."""
        return self.sample(now_s)[0]

    def sample(self, now_s: float) -> tuple[np.ndarray, np.ndarray]:
        """Commanded positions and velocities at `now_s` (not before the
        last take-over)."""
        spline = self._spline
        if spline is not None and now_s >= spline.times[-1]:
            self._hold, self._spline = spline.positions[-1].copy(), None
            self._hold_velocity = (
                np.zeros_like(self._hold) if spline.velocities is None else spline.velocities[-1].copy()
            )
        if self._spline is None:
            return self._hold.copy(), self._hold_velocity.copy()
        # At the take-over itself: its state, velocity included (a second
        # trajectory received at that instant takes over from it as it is).
        i = max(int(np.searchsorted(spline.times, now_s, side="right")) - 1, 0)
        duration = spline.times[i + 1] - spline.times[i]
        u = max(now_s - spline.times[i], 0.0) / duration
        p0, p1 = spline.positions[i], spline.positions[i + 1]
        if spline.velocities is None:
            return p0 + u * (p1 - p0), (p1 - p0) / duration
        m0, m1 = spline.velocities[i] * duration, spline.velocities[i + 1] * duration
        position = (
            (2 * u**3 - 3 * u**2 + 1) * p0
            + (u**3 - 2 * u**2 + u) * m0
            + (-2 * u**3 + 3 * u**2) * p1
            + (u**3 - u**2) * m1
        )
        velocity = (
            (6 * u**2 - 6 * u) * p0 + (3 * u**2 - 4 * u + 1) * m0 + (-6 * u**2 + 6 * u) * p1 + (3 * u**2 - 2 * u) * m1
        ) / duration
        return position, velocity


class ControllerSet:
    """Trajectory controllers side by side, each owning some joints (say an
    arm's and a gripper's), as ros2_control runs them: a trajectory for one
    leaves the others' joints alone."""

    def __init__(self, initial_positions: np.ndarray):
        self._initial = np.asarray(initial_positions, dtype=np.float64).copy()
        self._controllers: dict[tuple[int, ...], TrajectoryTracker] = {}

    def command(self, trajectory: Trajectory, now_s: float, joints: tuple[int, ...] | None = None) -> None:
        """`trajectory` for the controller of `joints` (all joints when None).

        Raises:
            TrajectoryRejected: as TrajectoryTracker.command.
        """
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


def setpoints_ahead(controller: TrajectoryTracker | ControllerSet, times_s) -> np.ndarray:
    """(len(times), J) where `controller` will have the setpoint at the
    increasing `times_s`, leaving it as it is: sampling moves a controller
    on (pending take-overs, finished splines), so a copy is sampled."""
    preview = copy.deepcopy(controller)
    return np.stack([preview.reference(t) for t in times_s])
