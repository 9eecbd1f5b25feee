"""The tests' joint_trajectory_controller (test/jtc.py) against values
worked out by hand and against JTC's own rejection rules; then the
project's TrajectoryTracker against it."""

import numpy as np
import pytest
from builtin_interfaces.msg import Duration, Time
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from jtc import Jtc, cubic, rejection
from video2act_core.trajectory import Trajectory, TrajectoryTracker


def message(names, times, positions, velocities=None, stamp_s=0.0, effort=None):
    msg = JointTrajectory(joint_names=list(names))
    msg.header.stamp = Time(sec=int(stamp_s), nanosec=round((stamp_s - int(stamp_s)) * 1e9))
    for k, t in enumerate(times):
        msg.points.append(
            JointTrajectoryPoint(
                positions=list(positions[k]),
                velocities=list(velocities[k]) if velocities is not None else [],
                effort=list(effort[k]) if effort is not None else [],
                time_from_start=Duration(sec=int(t), nanosec=round((t - int(t)) * 1e9)),
            )
        )
    return msg


def test_cubic_segments_meet_their_ends_and_known_midpoints():
    # p0 = 0, v0 = 1, p1 = 1, v1 = 0 over 1 s: p(t) = t + t^2 - t^3, p(0.5) = 0.625, p'(0.5) = 1.25.
    position, velocity = cubic(0.0, 1.0, 1.0, 0.0, 1.0, 0.5)
    assert (position, velocity) == pytest.approx((0.625, 1.25))
    assert cubic(0.0, 1.0, 1.0, 0.0, 1.0, 1.0) == pytest.approx((1.0, 0.0))
    # Over 2 s from rest to rest 0 -> 2: p(1) = 1, the speed there 1.5 = 3/2 the mean.
    assert cubic(0.0, 0.0, 2.0, 0.0, 2.0, 1.0) == pytest.approx((1.0, 1.5))


def test_the_controller_takes_over_from_its_last_command_and_holds_the_last_point():
    jtc = Jtc(["a"], [0.0])
    assert jtc.receive(message(["a"], [1.0, 2.0], [[1.0], [3.0]]), now_s=10.0) == ""
    assert jtc.position(10.5)[0] == pytest.approx(0.5)  # linear: no velocities
    assert jtc.position(11.5)[0] == pytest.approx(2.0)
    assert jtc.position(20.0)[0] == pytest.approx(3.0)
    # Replaced at 11.5 from the setpoint then (2.0), at rest... linear again to 0 at 12.5.
    jtc.receive(message(["a"], [1.0], [[0.0]]), now_s=11.5)
    assert jtc.position(12.0)[0] == pytest.approx(1.0)


def test_a_late_trajectory_is_joined_between_its_own_points():
    jtc = Jtc(["a"], [0.0])
    jtc.receive(message(["a"], [0.1, 0.2], [[1.0], [2.0]], [[10.0], [0.0]], stamp_s=10.0), now_s=10.15)
    # Between (10.1, 1, 10) and (10.2, 2, 0), halfway: 1.5 + (10 - 0) * 0.1 / 8 = 1.625.
    assert jtc.position(10.15)[0] == pytest.approx(1.625)


def test_the_controllers_time_runs_forward():
    """A receipt time that reads earlier than the take-over in force (two
    clocks read apart on a loaded machine) is taken over at that take-over,
    never by sampling a cubic before its start: that extrapolates to any
    value (here 0.01 rad ahead within 1 ms, sampled 50 ms early: ~1e5 rad)."""
    jtc = Jtc(["a"], [0.0])
    jtc.receive(message(["a"], [0.001, 0.01], [[0.01], [0.02]], [[1.0], [0.0]], stamp_s=10.0), now_s=10.0)
    jtc.receive(message(["a"], [0.1], [[0.03]], [[0.0]], stamp_s=9.95), now_s=9.95)
    assert all(0.0 <= jtc.position(t)[0] <= 0.03 for t in np.linspace(10.0, 10.2, 41))
    with pytest.raises(ValueError, match="the controller.s time runs forward"):
        jtc.position(9.99)


@pytest.mark.parametrize(
    "names, times, positions, velocities, stamp, effort, expected",
    [
        (["a"], [0.1], [[0.0]], None, 0.0, None, "Joints on incoming trajectory don't match"),
        (["a", "b", "c"], [0.1], [[0.0] * 3], None, 0.0, None, "Joints on incoming trajectory don't match"),
        (["a", "x"], [0.1], [[0.0, 0.0]], None, 0.0, None, "Incoming joint x doesn't match"),
        (["a", "b"], [], [], None, 0.0, None, "Empty trajectory received."),
        (["a", "b"], [0.1, 0.2], [[0, 0], [0, 0]], None, 9.7, None, "ends in the past"),
        (["a", "b"], [0.2, 0.2], [[0, 0], [0, 0]], None, 0.0, None, "not strictly increasing"),
        (["a", "b"], [0.1], [[0.0]], None, 0.0, None, "Mismatch between joint_names size (2) and positions (1)"),
        (["a", "b"], [0.1], [[0, 0]], [[1.0]], 0.0, None, "and velocities (1)"),
        (["a", "b"], [0.1], [[0, 0]], None, 0.0, [[1.0, 1.0]], "only supported for controllers using the 'effort'"),
        (["a", "a"], [0.1], [[0, 0]], None, 0.0, None, "duplicate joint names"),
        (["a", "b"], [0.1], [[0, float("nan")]], None, 0.0, None, "NaN or Inf"),
        (["b", "a"], [0.1, 0.3], [[0, 0], [1, 1]], [[1, 1], [0.5, 0]], 9.8, None, ""),
    ],
)
def test_rejections_follow_validate_trajectory_msg(names, times, positions, velocities, stamp, effort, expected):
    msg = message(names, times, positions, velocities, stamp, effort)
    from jtc import points_of

    problem = rejection(list(msg.joint_names), points_of(msg), stamp, 10.0, ["a", "b"])
    assert (expected in problem) if expected else problem == "", problem


def test_a_nonzero_final_velocity_is_refused_only_where_the_controller_says_so():
    msg = message(["a"], [0.1], [[0.0]], [[0.5]])
    from jtc import points_of

    assert rejection(["a"], points_of(msg), 0.0, 0.0, ["a"]) == ""
    assert "is not zero" in rejection(
        ["a"], points_of(msg), 0.0, 0.0, ["a"], allow_nonzero_velocity_at_trajectory_end=False
    )


def test_the_projects_tracker_agrees_with_the_controller_on_random_streams_of_chunks():
    """The sim arms and the envelope model the controller with
    TrajectoryTracker; it must give JTC's setpoints, late chunks included."""
    rng = np.random.default_rng(3)
    for _ in range(40):
        initial = rng.uniform(-1, 1, 2)
        tracker, jtc = TrajectoryTracker(initial), Jtc(["a", "b"], initial)
        now = 100.0
        for _ in range(15):
            now += rng.choice([0.0, 0.01, 0.033, 0.1, 0.5])  # 0: two received at one instant (a sim clock)
            points = int(rng.integers(1, 6))
            times = np.cumsum(rng.uniform(0.02, 0.2, points))
            positions = rng.uniform(-2, 2, (points, 2))
            velocities = rng.uniform(-3, 3, (points, 2)) if rng.random() < 0.7 else None
            stamp = now - rng.choice([0.0, 0.01, 0.05, 0.15]) if rng.random() < 0.8 else 0.0
            try:
                tracker.command(Trajectory(stamp, times, positions, velocities), now)
                accepted = True
            except ValueError:
                accepted = False
            problem = jtc.receive(message(["a", "b"], times, positions, velocities, stamp), now)
            assert accepted == (problem == ""), problem
            if rng.random() < 0.5:  # else the next one arrives at this same instant, nothing sampled between
                for t in np.linspace(now, now + 0.4, 9):
                    np.testing.assert_allclose(tracker.reference(t), jtc.position(t), atol=1e-6)
                now += 0.4
