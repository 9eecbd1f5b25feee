"""How smoothly commands join: the setpoint a joint_trajectory_controller
follows, rebuilt from the commands sent to it with the controller model of
`trajectory.py`, sampled on a fixed grid, with figures for the seams where
one command takes over from the next. The closed-loop evaluation, the demo
and bag replay all report these, so their figures compare.

- seam position jump: how far a new chunk's first point lies from where
  the running command would have had the setpoint then (chunks that
  disagree; the controller hides it by interpolating, at a velocity jump;
  holds are stops, not disagreements, and do not count);
- seam velocity jump: the change of setpoint velocity across a take-over;
- RMS jerk of the setpoint; RMS tracking error of measured positions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from video2act_core.trajectory import ControllerSet, Trajectory, setpoints_ahead


@dataclass
class Smoothness:
    commands: int  # policy chunks (not holds) that took over
    seam_position_jump: float  # mean, rad
    seam_velocity_jump: float  # mean, rad/s
    setpoint_rms_jerk: float  # rad/s^3
    tracking_rms: float  # rad; nan without measured states

    def as_dict(self) -> dict[str, float]:
        return {key: round(value, 5) if isinstance(value, float) else value for key, value in self.__dict__.items()}


class SetpointLog:
    def __init__(self, sample_dt: float):
        self.sample_dt = sample_dt
        self._controllers: ControllerSet | None = None
        self._next_sample_s = 0.0
        self._setpoints: list[np.ndarray] = []
        self._errors: list[np.ndarray] = []
        self._seams: list[int] = []  # index of the first sample under each new command
        self._disagreements: list[float] = []
        self._commands = 0

    def _start(self, now_s: float, positions: np.ndarray) -> None:
        self._controllers = ControllerSet(positions)
        self._next_sample_s = now_s

    def _advance(self, now_s: float) -> None:
        while self._next_sample_s <= now_s + 1e-9:
            self._setpoints.append(self._controllers.reference(self._next_sample_s))
            self._next_sample_s += self.sample_dt

    def state(self, now_s: float, positions: np.ndarray) -> None:
        """A measured state at `now_s` (the first one starts the log)."""
        positions = np.asarray(positions, dtype=np.float64)
        if self._controllers is None:
            self._start(now_s, positions)
        self._advance(now_s)
        self._errors.append(positions - self._controllers.reference(now_s))

    def command(
        self,
        now_s: float,
        trajectory: Trajectory,
        joints: tuple[int, ...] | None = None,
        hold: bool = False,
        initial_positions: np.ndarray | None = None,
    ) -> None:
        """A command taking over at `now_s`, for the controller of `joints`
        (all when None). Without a measured state yet, `initial_positions`
        start the log (replay: the command's own origin).

        Raises:
            TrajectoryRejected: as the controller would refuse it.
        """
        if self._controllers is None:
            if initial_positions is None:
                return
            self._start(now_s, np.asarray(initial_positions, dtype=np.float64))
        now_s = max(now_s, self._next_sample_s - self.sample_dt)  # messages may arrive a little out of order
        self._advance(now_s)
        start = trajectory.start_s if trajectory.start_s > 0 else now_s
        first_s = start + float(trajectory.times_s[0])
        running = setpoints_ahead(self._controllers, [first_s])[0] if self._seams else None
        self._controllers.command(trajectory, now_s, joints)
        if running is not None and first_s > now_s and not hold:
            columns = list(joints) if joints is not None else slice(None)
            self._disagreements.append(float(np.linalg.norm(np.asarray(trajectory.positions)[0] - running[columns])))
        self._seams.append(len(self._setpoints))
        self._commands += not hold

    def summary(self, until_s: float | None = None) -> Smoothness:
        """The figures so far (sampled on to `until_s`, when given)."""
        if self._controllers is not None and until_s is not None:
            self._advance(until_s)
        setpoints, dt = np.asarray(self._setpoints), self.sample_dt
        jumps, jerk = [], np.zeros((0,))
        if len(setpoints) > 3:
            velocity = np.diff(setpoints, axis=0) / dt  # velocity[k] spans samples k..k+1
            jumps = [np.linalg.norm(velocity[k - 1] - velocity[k - 2]) for k in self._seams if 2 <= k <= len(velocity)]
            jerk = np.diff(setpoints, n=3, axis=0) / dt**3
        mean = lambda values: float(np.mean(values)) if len(values) else 0.0
        return Smoothness(
            self._commands,
            mean(self._disagreements),
            mean(jumps),
            float(np.sqrt(np.mean(jerk**2))) if jerk.size else 0.0,
            float(np.sqrt(np.mean(np.square(self._errors)))) if self._errors else float("nan"),
        )
