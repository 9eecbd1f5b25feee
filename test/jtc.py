"""ros2_controllers' joint_trajectory_controller (4.42.1, the Jazzy branch)
as the tests' judge, written from its source and apart from the project's
own TrajectoryTracker (video2act_core/trajectory.py), so that a mistake in
one does not hide in the other.

- `rejection`: validate_trajectory_msg (joint_trajectory_controller.cpp),
  check by check in its order, with its log messages; plus two faults JTC
  does not catch but turns into a wrong command (duplicate joint names,
  NaN or Inf values), which no sender of ours may produce.
- `Jtc`: what the controller commands over time (trajectory.cpp sample()),
  with `interpolate_from_desired_state` as config/robots/*_controllers.yaml
  set it: a trajectory takes over at its first update from the last command;
  while its first point lies ahead the setpoint moves on a segment from that
  command to it, later between the message's own points; after the last
  point the controller holds it. Cubic segments where both ends carry
  velocities (interpolate_cubic's coefficients), linear otherwise.
"""

from __future__ import annotations

import math

import numpy as np

FLT_EPSILON = 1.1920929e-07


def rejection(
    joint_names: list[str],
    points: list[dict],
    stamp_s: float,
    now_s: float,
    controller_joints: list[str],
    allow_partial_joints_goal: bool = False,
    allow_nonzero_velocity_at_trajectory_end: bool = True,
) -> str:
    """Why the controller refuses the trajectory ('' when it accepts it).
    `points`: dicts of time_from_start (s), positions, velocities,
    accelerations, effort (lists, possibly empty)."""
    if not allow_partial_joints_goal and len(joint_names) != len(controller_joints):
        return "Joints on incoming trajectory don't match the controller joints."
    if not joint_names:
        return "Empty joint names on incoming trajectory."
    if not points:
        return "Empty trajectory received."
    for name in joint_names:
        if name not in controller_joints:
            return f"Incoming joint {name} doesn't match the controller's joints."
    if not allow_nonzero_velocity_at_trajectory_end:
        for name, velocity in zip(joint_names, points[-1]["velocities"]):
            if abs(velocity) > FLT_EPSILON:
                return f"Velocity of last trajectory point of joint {name} is not zero: {velocity:.15f}"
    if stamp_s != 0 and stamp_s + points[-1]["time_from_start"] < now_s:
        return (
            f"Received trajectory with non-zero start time ({stamp_s:f}) that ends in the past "
            f"({stamp_s + points[-1]['time_from_start']:f})"
        )
    for i in range(1, len(points)):
        if points[i]["time_from_start"] <= points[i - 1]["time_from_start"]:
            return (
                f"Time between points {i - 1} and {i} is not strictly increasing, it is "
                f"{points[i - 1]['time_from_start']:f} and {points[i]['time_from_start']:f} respectively"
            )
    for i, point in enumerate(points):
        if len(point["positions"]) != len(joint_names):
            return (
                f"Mismatch between joint_names size ({len(joint_names)}) and positions "
                f"({len(point['positions'])}) at point #{i}."
            )
        for field in ("velocities", "accelerations"):
            if point[field] and len(point[field]) != len(joint_names):
                return (
                    f"Mismatch between joint_names size ({len(joint_names)}) and {field} "
                    f"({len(point[field])}) at point #{i}."
                )
        if point["effort"]:
            return (
                "Trajectories with effort fields are only supported for controllers using the 'effort' "
                "command interface."
            )
    # Accepted by JTC, yet a wrong command: ours must never send these.
    if len(set(joint_names)) != len(joint_names):
        return "(accepted by JTC, corrupts the command) duplicate joint names"
    values = [v for point in points for field in ("positions", "velocities", "accelerations") for v in point[field]]
    if not all(math.isfinite(v) for v in values + [point["time_from_start"] for point in points]):
        return "(accepted by JTC, sent to the hardware) NaN or Inf values"
    return ""


def points_of(msg) -> list[dict]:
    """A trajectory_msgs/JointTrajectory's points as `rejection` takes them."""
    return [
        {
            "time_from_start": p.time_from_start.sec + p.time_from_start.nanosec * 1e-9,
            "positions": list(p.positions),
            "velocities": list(p.velocities),
            "accelerations": list(p.accelerations),
            "effort": list(p.effort),
        }
        for p in msg.points
    ]


def stamp_of(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def cubic(p0, v0, p1, v1, duration, t):
    """Position and velocity `t` into a segment of `duration`, JTC's
    interpolate_cubic coefficients."""
    a2 = (-3 * p0 + 3 * p1 - 2 * v0 * duration - v1 * duration) / duration**2
    a3 = (2 * p0 - 2 * p1 + v0 * duration + v1 * duration) / duration**3
    return p0 + v0 * t + a2 * t**2 + a3 * t**3, v0 + 2 * a2 * t + 3 * a3 * t**2


class Jtc:
    """One controller owning `joints`, starting at `initial` (held)."""

    def __init__(self, joints: list[str], initial, **validation):
        self.joints = list(joints)
        self.validation = validation
        self.hold = (np.asarray(initial, dtype=np.float64), np.zeros(len(joints)))
        self.trajectory = None  # (take-over time, take-over state, start, times, positions, velocities|None)
        self.rejections: list[str] = []
        self.accepted = 0

    def receive(self, msg, now_s: float) -> str:
        """A JointTrajectory message arriving at `now_s`; taken over at once
        (the controller's next update). Returns JTC's rejection, if any."""
        return self.accept(list(msg.joint_names), points_of(msg), stamp_of(msg), now_s)

    def command(self, stamp_s: float, times_s, positions, velocities, now_s: float) -> str:
        """The same for points given as arrays, in this controller's joint order."""
        points = [
            {
                "time_from_start": float(t),
                "positions": list(p),
                "velocities": list(v),
                "accelerations": [],
                "effort": [],
            }
            for t, p, v in zip(times_s, positions, velocities)
        ]
        return self.accept(self.joints, points, stamp_s, now_s)

    def accept(self, joint_names: list[str], points: list[dict], stamp_s: float, now_s: float) -> str:
        problem = rejection(joint_names, points, stamp_s, now_s, self.joints, **self.validation)
        if problem:
            self.rejections.append(problem)
            return problem
        order = [joint_names.index(name) for name in self.joints]
        positions = np.array([[p["positions"][i] for i in order] for p in points])
        velocities = (
            np.array([[p["velocities"][i] for i in order] for p in points])
            if all(p["velocities"] for p in points)
            else None
        )
        times = np.array([p["time_from_start"] for p in points])
        # The controller's time runs forward: it takes each trajectory over
        # at an update after the one before (a cubic sampled before its
        # start extrapolates to any value).
        if self.trajectory is not None:
            now_s = max(now_s, self.trajectory[0])
        state = self.sample(now_s)
        start = stamp_s or now_s
        self.trajectory = (now_s, state, start, times, positions, velocities)
        self.accepted += 1
        return ""

    def sample(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """The commanded (positions, velocities) at `t` (not before the last take-over)."""
        if self.trajectory is None:
            return self.hold
        taken_s, (p_taken, v_taken), start, times, positions, velocities = self.trajectory
        if t < taken_s:
            raise ValueError(
                f"sampled at {t} s, before the take-over at {taken_s} s: the controller's time runs forward"
            )
        first = start + times[0]
        if t < first:
            if velocities is None:
                u = (t - taken_s) / (first - taken_s)
                return p_taken + u * (positions[0] - p_taken), (positions[0] - p_taken) / (first - taken_s)
            return cubic(p_taken, v_taken, positions[0], velocities[0], first - taken_s, t - taken_s)
        if t >= start + times[-1]:
            return positions[-1].copy(), (
                velocities[-1].copy() if velocities is not None else np.zeros(len(self.joints))
            )
        i = int(np.searchsorted(start + times, t, side="right")) - 1
        duration = times[i + 1] - times[i]
        if velocities is None:
            u = (t - start - times[i]) / duration
            return positions[i] + u * (positions[i + 1] - positions[i]), (positions[i + 1] - positions[i]) / duration
        return cubic(positions[i], velocities[i], positions[i + 1], velocities[i + 1], duration, t - start - times[i])

    def position(self, t: float) -> np.ndarray:
        return self.sample(t)[0]
