"""The safety envelope: every command the policy publishes, chunks and holds
alike, comes out of `SafetyEnvelope`, so none is ever non-finite, outside
the position limits, or a step above the velocity limit from the previous
command.

"The previous command" is what the controller is tracking: the envelope
models joint_trajectory_controller with `interpolate_from_desired_state`
(a trajectory replaces the running one on receipt and is interpolated from
the setpoint at that moment; config/robots/*_controllers.yaml set it), so a
new chunk starts from where the last one has the setpoint now, not from the
measured state (the arm lags its setpoint; starting from the measurement
made the executed setpoint exceed the limit at chunk seams). Only with no
command in force (start-up, a reset, re-arming) does a chunk start from the
measured state, and only from a trusted one.

Every point must also be reachable from the measured state: no further from
it than max_velocity x (its time since the state + `follow_lag_s`), the
gripper's joints aside (a grasp stops the jaw short by design). An arm
that does not follow (a controller inactive, e-stopped or rejecting goals)
would otherwise let each command walk a step further from it, and a
controller that starts from the measured state would be asked for several
times the velocity limit the moment it engages. Where that reach and the
step from the setpoint in force disagree, the step wins (the setpoint never
jumps) and the point is pulled toward the arm as far as the step allows;
the watchdog (`FollowWatchdog`) stops such an arm.
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
    """Points for the controller, as a JointTrajectory carries them."""

    stamp_s: float  # header stamp: the time of the state it was planned from (a hold: of the command it stops)
    times_s: np.ndarray  # (P,) time_from_start
    positions: np.ndarray  # (P, J)
    velocities: np.ndarray  # (P, J), consistent with the positions
    limited: int  # values of the requested chunk the envelope changed
    hold: bool
    origin: np.ndarray  # (J,) the setpoint it starts from: the command in force, or the trusted measured state
    issued_s: float  # when it is sent and takes over from the command in force

    def as_sent(self) -> tuple[float, np.ndarray]:
        """(header stamp, times_from_start) of the JointTrajectory that
        carries it. A chunk keeps the stamp of the state it was planned
        from: the controller skips what elapsed meanwhile. A stop must hold
        however late it arrives: stamped zero ("on receipt", its point the
        same time after sending), JTC never refuses it as ending in the past
        and brakes from wherever its setpoint has got to."""
        if self.hold:
            return 0.0, self.times_s + (self.stamp_s - self.issued_s)
        return self.stamp_s, self.times_s

    def segment_durations(self) -> np.ndarray:
        """(P,) seconds from `issued_s` to the first point, then between points."""
        # Differences first: absolute times near 1.8e9 s resolve only 0.24 us.
        return np.diff(np.concatenate([[0.0], (self.stamp_s - self.issued_s) + self.times_s]))


def point_velocities(start: np.ndarray, positions: np.ndarray, durations: np.ndarray) -> np.ndarray:
    """Velocities for `positions` (P, J) reached after `durations` (P,) from
    `start` (J,): the smaller of the two adjacent segment speeds (zero where
    the direction turns), and zero at the last point so a chunk that is not
    followed by another ends at rest. No point is faster than its segments.
    """
    segments = np.diff(np.vstack([start, positions]), axis=0) / np.asarray(durations)[:, None]  # (P, J)
    velocities = np.zeros_like(positions)
    before, after = segments[:-1], segments[1:]
    same_direction = np.sign(before) == np.sign(after)
    velocities[:-1] = np.where(same_direction, np.sign(before) * np.minimum(np.abs(before), np.abs(after)), 0.0)
    return velocities


class SafetyEnvelope:
    """Turns requested joint targets into commands that respect the limits,
    and remembers the command in force to bound the next one."""

    def __init__(
        self,
        limits: JointLimits,
        period_s: float,
        state_margin: float = 0.05,
        lead_s: float = 0.02,
        follow_lag_s: float = 0.1,
        unfollowed: np.ndarray | None = None,
    ):
        self.limits = limits
        self.period_s = period_s
        self.state_margin = state_margin
        # A command's first point lies at least this far after it is sent:
        # one whose first point passed in transit makes JTC jump to the
        # trajectory instead of interpolating from its setpoint.
        self.lead_s = lead_s
        # How far behind its setpoint (in time) an arm that follows may be;
        # `unfollowed` joints (a gripper closing on an object stops short of
        # its command by design) are not bound to their measured positions.
        self.follow_lag_s = follow_lag_s
        self.unfollowed = np.zeros(len(limits.joint_names), bool) if unfollowed is None else np.asarray(unfollowed)
        self._tracker: TrajectoryTracker | None = None
        self._stamp_s = 0.0  # the stamp of the command in force
        self._end_s = 0.0  # when its last point is due

    def state_problem(self, positions: np.ndarray) -> str:
        """Why a measured state is not trusted to plan from, or ''."""
        if positions.shape != self.limits.lower.shape or not np.all(np.isfinite(positions)):
            return f"joint state {positions.tolist()} is not finite"
        outside = (positions < self.limits.lower - self.state_margin) | (
            positions > self.limits.upper + self.state_margin
        )
        if np.any(outside):
            joints = [name for name, out in zip(self.limits.joint_names, outside) if out]
            return f"joint state outside the limits for {joints}: {positions[outside].tolist()}"
        return ""

    def spline_safe_limits(self) -> tuple[np.ndarray, np.ndarray]:
        """The position limits pulled in by the most a controller's cubic
        spline can overshoot a point: where a chunk reverses the motion in
        force, the spline leaves its origin at the old velocity and
        overshoots by 4/27 of it times the segment's duration. Between
        points of ours a spline runs at up to 1.5x max_velocity, and chains
        of reversals push a take-over velocity towards 2.2x at most, so the
        overshoot stays below 0.33 max_velocity * period. Targets are
        clamped to these limits, so the setpoint never crosses the real ones."""
        margin = 0.35 * self.limits.max_velocity * self.period_s
        middle = np.where(
            np.isfinite(self.limits.lower + self.limits.upper), (self.limits.lower + self.limits.upper) / 2, 0.0
        )
        return np.minimum(self.limits.lower + margin, middle), np.maximum(self.limits.upper - margin, middle)

    def setpoint(self, now_s: float) -> np.ndarray | None:
        """Where the command in force has the controller's setpoint at `now_s`."""
        return None if self._tracker is None else self._tracker.reference(now_s)

    def command_in_force(self) -> tuple[TrajectoryTracker | None, float]:
        """The controller model tracking the last command, and when that
        command's last point is due (the tracker is None when none is in force)."""
        return self._tracker, self._end_s

    def forget(self) -> None:
        """No command in force any more (a reset or re-arming): the next
        chunk starts from the measured state."""
        self._tracker = None

    def chunk(self, targets: np.ndarray, state: np.ndarray, planned_s: float, issued_s: float) -> JointCommand | None:
        """A command from `targets` (H, J), the positions for `planned_s` +
        (k + 1) * period: points that are due before `issued_s` + lead are
        dropped (they elapsed while the model ran), the rest are clamped to
        the position limits and each step is bounded by max_velocity times
        its duration, starting from the setpoint in force at `issued_s` (or
        from the trusted measured `state`, clamped, when none is in force).
        None when no point is left."""
        times = self.period_s * np.arange(1, len(targets) + 1)
        ahead = (planned_s - issued_s) + times >= self.lead_s
        if not np.any(ahead):
            return None
        times, targets = times[ahead], targets[ahead]
        measured = np.clip(state, self.limits.lower, self.limits.upper)
        start = self.setpoint(issued_s)
        if start is None:
            start = measured
        requested = np.where(np.isfinite(targets), targets, start)
        lower, upper = self.spline_safe_limits()
        clamped = np.clip(requested, lower, upper)
        durations = np.diff(np.concatenate([[0.0], (planned_s - issued_s) + times]))
        positions = np.empty_like(clamped)
        previous = start
        for i, target in enumerate(clamped):
            step = self.limits.max_velocity * durations[i]
            reach = np.where(self.unfollowed, np.inf, self.limits.max_velocity * (times[i] + self.follow_lag_s))
            low, high = self.reachable(previous - step, previous + step, measured, reach)
            previous = np.clip(target, low, high)
            positions[i] = previous
        limited = int(np.sum(np.abs(positions - targets) > TOLERANCE) if np.all(np.isfinite(targets)) else targets.size)
        return self._issue(planned_s, times, start, positions, durations, limited, hold=False, issued_s=issued_s)

    @staticmethod
    def reachable(
        low: np.ndarray, high: np.ndarray, measured: np.ndarray, reach: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """The part of the step interval [low, high] within `reach` of the
        measured positions; where they do not meet, the end of the step
        interval nearest to the arm (the step bound is never broken)."""
        near_low, near_high = np.maximum(low, measured - reach), np.minimum(high, measured + reach)
        apart = near_low > near_high
        nearest = np.where(high < measured - reach, high, low)
        return np.where(apart, nearest, near_low), np.where(apart, nearest, near_high)

    def stop_at(self, measured: np.ndarray, stamp_s: float, issued_s: float) -> JointCommand:
        """A stop at the measured pose (clamped to the limits), for an arm
        that does not follow its setpoint: the command in force is a fiction
        there, so the next chunk starts from the arm. The stop is timed so
        that a controller still interpolating from that setpoint gets there
        within the velocity limit (one period at least)."""
        target = np.clip(measured, self.limits.lower, self.limits.upper)
        setpoint = self.setpoint(issued_s)
        duration = (
            self.period_s
            if setpoint is None
            else max(self.period_s, float(np.max(np.abs(target - setpoint) / self.limits.max_velocity)))
        )
        self.forget()
        times = np.array([issued_s + duration - stamp_s])
        return self._issue(
            stamp_s, times, target, target[None].copy(), np.array([duration]), 0, hold=True, issued_s=issued_s
        )

    def hold(self, issued_s: float) -> JointCommand | None:
        """Stop at the setpoint in force, never at a measured state (which may
        be the very thing that is wrong); None when nothing is in force. The
        hold carries the stamp of the command it stops: it belongs to that
        command's episode."""
        start = self.setpoint(issued_s)
        if start is None:
            return None
        times = np.array([issued_s + self.period_s - self._stamp_s])
        return self._issue(
            self._stamp_s, times, start, start[None].copy(), np.array([self.period_s]), 0, hold=True, issued_s=issued_s
        )

    def _issue(
        self,
        stamp_s: float,
        times: np.ndarray,
        start: np.ndarray,
        positions: np.ndarray,
        durations: np.ndarray,
        limited: int,
        hold: bool,
        issued_s: float,
    ) -> JointCommand:
        command = JointCommand(
            stamp_s,
            times,
            positions,
            point_velocities(start, positions, durations),
            limited,
            hold,
            start.copy(),
            issued_s,
        )
        if self._tracker is None:
            self._tracker = TrajectoryTracker(start)
        self._tracker.command(Trajectory(stamp_s, times, positions, command.velocities), issued_s)
        self._stamp_s = stamp_s
        self._end_s = stamp_s + float(times[-1])
        return command


def envelope_violations(
    command: JointCommand, previous_setpoint: np.ndarray | None, limits: JointLimits, tolerance: float = 1e-6
) -> list[str]:
    """Everything wrong with a published command, for tests and monitors:
    non-finite values, positions outside the limits, steps (from the
    previous command's setpoint, then point to point) or point velocities
    above max_velocity. Empty when the command is inside the envelope."""
    problems = []
    if not (np.all(np.isfinite(command.positions)) and np.all(np.isfinite(command.velocities))):
        return ["non-finite values"]
    if np.any(command.positions < limits.lower - tolerance) or np.any(command.positions > limits.upper + tolerance):
        problems.append("position outside the limits")
    durations = command.segment_durations()
    if np.any(durations <= 0):
        problems.append("a point is due before the command is sent")
    elif previous_setpoint is not None or len(command.positions) > 1:
        path = command.positions if previous_setpoint is None else np.vstack([previous_setpoint, command.positions])
        steps = durations if previous_setpoint is not None else durations[1:]
        speeds = np.abs(np.diff(path, axis=0)) / steps[:, None]
        if np.any(speeds > limits.max_velocity * (1 + tolerance) + tolerance):
            problems.append(f"step speed {speeds.max():.4f} above the velocity limit")
    if np.any(np.abs(command.velocities) > limits.max_velocity * (1 + tolerance) + tolerance):
        problems.append("point velocity above the velocity limit")
    return problems
