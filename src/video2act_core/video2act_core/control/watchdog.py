"""Does the arm follow what we command? A controller that is inactive,
e-stopped, rejecting our trajectories (wrong joints, wrong topic) or not
running at all leaves the arm where it is, and a topic gives no feedback:
the only evidence is the measured joints against the setpoints we sent.
Controller-agnostic: joint states and the envelope's model of the setpoint.
"""

from __future__ import annotations

from collections import deque

import numpy as np

NOT_FOLLOWING_HINT = (
    "the controller is not executing our trajectories: rejected joints? wrong topic? controller not active?"
)


class FollowWatchdog:
    """Compares each measured state with the setpoints commanded over the
    `lag_s` before it (an arm that follows lags its setpoint a little):
    a joint further than `tolerance` from all of them does not follow (the
    `unwatched` joints aside). When
    some joint has not followed for `timeout_s` (by the states' stamps),
    `check` says why; until then, and while no command is in force, ''."""

    def __init__(self, lag_s: float, tolerance: float, timeout_s: float, unwatched: np.ndarray | None = None):
        if lag_s < 0 or tolerance <= 0 or timeout_s <= 0:
            raise ValueError(
                f"watchdog needs lag_s >= 0, tolerance > 0 and timeout_s > 0, got {lag_s}, {tolerance}, {timeout_s}"
            )
        self.lag_s, self.tolerance, self.timeout_s = lag_s, tolerance, timeout_s
        # Joints that may stop short of their setpoint by design (a gripper on an object).
        self.unwatched = unwatched
        self._setpoints: deque[tuple[float, np.ndarray]] = deque()
        self._since_s: float | None = None  # stamp of the first state, in a row, that did not follow
        self._last_state_s = -np.inf

    def reset(self) -> None:
        """Nothing commanded any more (a reset, re-arming, a stop at the arm)."""
        self._setpoints.clear()
        self._since_s = None

    def record(self, time_s: float, setpoint: np.ndarray) -> None:
        """The setpoint in force at `time_s` (non-decreasing)."""
        self._setpoints.append((time_s, np.asarray(setpoint, dtype=np.float64)))

    def last_noted_s(self) -> float:
        """The time of the newest setpoint recorded (-inf when none)."""
        return self._setpoints[-1][0] if self._setpoints else -np.inf

    def error(self, positions: np.ndarray, stamp_s: float) -> np.ndarray | None:
        """Per joint, how far the measured `positions` at `stamp_s` lie
        outside the range of the setpoints of [stamp - lag, stamp]; None
        when no setpoint of that window is known."""
        window = [p for t, p in self._setpoints if stamp_s - self.lag_s <= t <= stamp_s]
        # The setpoint in force at the window's start is the last one recorded before it.
        before = [p for t, p in self._setpoints if t < stamp_s - self.lag_s]
        if before:
            window.append(before[-1])
        if not window:
            return None
        setpoints = np.stack(window)
        error = np.maximum(0.0, np.maximum(setpoints.min(axis=0) - positions, positions - setpoints.max(axis=0)))
        return error if self.unwatched is None else np.where(self.unwatched, 0.0, error)

    def check(self, positions: np.ndarray, stamp_s: float, joint_names: tuple[str, ...]) -> str:
        """Why the arm is taken not to follow, or ''. Each state counts once."""
        if stamp_s <= self._last_state_s:
            return ""
        self._last_state_s = stamp_s
        while len(self._setpoints) > 1 and self._setpoints[1][0] < stamp_s - self.lag_s:
            self._setpoints.popleft()
        error = self.error(positions, stamp_s)
        if error is None or np.max(error) <= self.tolerance:
            self._since_s = None
            return ""
        if self._since_s is None:
            self._since_s = stamp_s
        if stamp_s - self._since_s < self.timeout_s:
            return ""
        worst = int(np.argmax(error))
        return (
            f"{NOT_FOLLOWING_HINT} {joint_names[worst]} is {error[worst]:.2f} rad from its setpoint "
            f"(tolerance {self.tolerance}) for {stamp_s - self._since_s:.2f} s"
        )
