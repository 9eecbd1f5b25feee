"""One test per safety check, each able to fail: the envelope's oracle
(`envelope_violations`) on hand-made bad commands, the envelope's start,
position clamps, velocity step and reach bound, the limits (params file,
URDF, the tighter of both, what is missing), the planner's staleness and
future-stamp checks at their boundaries, the controller model's Hermite
spline against closed-form values, the setpoint's peak speed, and the
follow watchdog with the supervisor's use of it.

No DDS, no model where none is needed: `ScriptedSystem1` stands in for
System 1 under the real planner, envelope and supervisor."""

import re
from types import SimpleNamespace

import numpy as np
import pytest
from test_safety_envelope import PERIOD_S, random_limits, random_targets

from conftest import JOINTS, PARAMS_FILE, hand_made_latents
from video2act_core.checkpoint import load_system1
from video2act_core.control import (
    ChunkPlanner,
    JointCommand,
    JointLimits,
    JointStateSample,
    LatentsSample,
    Mode,
    PolicySupervisor,
    SafetyEnvelope,
    build_supervisor,
    envelope_violations,
    point_velocities,
)
from video2act_core.control.watchdog import FollowWatchdog
from video2act_core.latents import Latents
from video2act_core.params import PolicyParams, node_params
from video2act_core.trajectory import Trajectory, TrajectoryTracker

TICK_S = 1 / 30  # the supervisor tests tick at 30 Hz


class ScriptedSystem1:
    """System 1 without a model: `policy(joint_positions)` gives the (H, J) chunk."""

    def __init__(self, policy, horizon: int = 16):
        self.config = SimpleNamespace(
            context_dim=8,
            view_tokens=0,
            view_dim=0,
            view_layout=[],
            horizon=horizon,
            language=False,
            num_train_timesteps=100,
        )
        self.model_id = "scripted@test:0"
        self.needs_instruction = False
        self.default_instruction = ""
        self.trained_instructions = []
        self.policy = policy

    def act(self, latents, joint_positions, num_inference_steps=None, prior=None, prior_weights=None, instruction=""):
        return np.asarray(self.policy(np.asarray(joint_positions, dtype=np.float64)), dtype=np.float64)


def scripted_latents(system1: ScriptedSystem1, stamp_s: float) -> LatentsSample:
    tokens = np.zeros((4, system1.config.context_dim), np.float32)
    return LatentsSample(Latents(tokens, tokens.copy(), 0.0), int(round(stamp_s * 1e9)), 0, system1.model_id)


# --- envelope_violations: the oracle, on hand-made commands -------------------------------------------------------

# Joint b's limits are twice joint a's: a check that compares every joint with
# another joint's limit is caught too.
LIMITS2 = JointLimits.from_lists(["a", "b"], [-1.0, -2.0], [1.0, 2.0], [1.0, 2.0])


def hand_command(positions, velocities=None, times=None, stamp_s=10.0, issued_s=10.0) -> JointCommand:
    positions = np.atleast_2d(np.asarray(positions, dtype=np.float64))
    times = PERIOD_S * np.arange(1, len(positions) + 1) if times is None else np.asarray(times, dtype=np.float64)
    velocities = np.zeros_like(positions) if velocities is None else np.atleast_2d(np.asarray(velocities, float))
    return JointCommand(stamp_s, times, positions, velocities, 0, False, np.zeros(positions.shape[1]), issued_s)


NAN, INF = float("nan"), float("inf")
STEP = r"step speed {} above the velocity limit"


@pytest.mark.parametrize(
    "command, previous, expected",
    [
        # Good ones: inside, and exactly at the limits (positions, step speeds, point velocities).
        (hand_command([[0.05, 0.15], [0.1, 0.3]], [[0.5, 1.5], [0.0, 0.0]]), [0.0, 0.0], []),
        (hand_command([[1.0, -2.0]], [[1.0, -2.0]]), [0.9, -1.8], []),
        (hand_command([[0.0, 0.0], [0.1, 0.2]]), None, []),
        # Non-finite values.
        (hand_command([[NAN, 0.0]]), [0.0, 0.0], ["non-finite values"]),
        (hand_command([[0.0, -INF]]), [0.0, 0.0], ["non-finite values"]),
        (hand_command([[0.0, 0.0]], [[0.0, INF]]), [0.0, 0.0], ["non-finite values"]),
        (hand_command([[0.0, 0.0]], [[NAN, 0.0]]), [0.0, 0.0], ["non-finite values"]),
        # Below the lower limit only, above the upper only (each joint; the steps themselves are slow).
        (hand_command([[-1.001, 0.0]]), [-0.95, 0.0], ["position outside the limits"]),
        (hand_command([[0.0, -2.001]]), [0.0, -1.95], ["position outside the limits"]),
        (hand_command([[1.001, 0.0]]), [0.95, 0.0], ["position outside the limits"]),
        (hand_command([[0.0, 2.001]]), [0.0, 1.95], ["position outside the limits"]),
        # A step from the previous setpoint above max_velocity (joint a: 1.5 > 1; joint b: 2.5 > 2).
        (hand_command([[0.15, 0.0]]), [0.0, 0.0], [STEP.format(r"1\.5000")]),
        (hand_command([[0.0, -0.25]]), [0.0, 0.0], [STEP.format(r"2\.5000")]),
        # Point to point: without a previous setpoint, and after a good first step.
        (hand_command([[0.0, 0.0], [0.15, 0.0]]), None, [STEP.format(r"1\.5000")]),
        (hand_command([[0.05, 0.0], [0.2, 0.0]]), [0.0, 0.0], [STEP.format(r"1\.5000")]),
        # A point velocity above max_velocity (either sign).
        (hand_command([[0.05, 0.0]], [[1.5, 0.0]]), [0.0, 0.0], ["point velocity above the velocity limit"]),
        (hand_command([[0.0, 0.05]], [[0.0, -2.5]]), [0.0, 0.0], ["point velocity above the velocity limit"]),
        # A point due before the command is sent, or at the moment it is (segment durations <= 0).
        (
            hand_command([[0.0, 0.0], [0.0, 0.0]], issued_s=10.15),
            [0.0, 0.0],
            ["a point is due before the command is sent"],
        ),
        (
            hand_command([[0.0, 0.0]], times=[0.125], issued_s=10.125),
            [0.0, 0.0],
            ["a point is due before the command is sent"],
        ),
        (hand_command([[0.0, 0.0], [0.0, 0.0]], times=[0.1, 0.1]), None, ["a point is due before the command is sent"]),
    ],
    ids=[
        "good",
        "good-at-the-limits",
        "good-without-previous",
        "nan-position",
        "inf-position",
        "inf-velocity",
        "nan-velocity",
        "below-lower-a",
        "below-lower-b",
        "above-upper-a",
        "above-upper-b",
        "step-from-previous-a",
        "step-from-previous-b",
        "point-to-point-step",
        "point-to-point-step-after-a-good-one",
        "point-velocity-a",
        "point-velocity-b",
        "due-before-sent",
        "due-when-sent",
        "two-points-at-once",
    ],
)
def test_envelope_violations_names_each_kind_of_bad_command(command, previous, expected):
    previous = None if previous is None else np.asarray(previous, dtype=np.float64)
    problems = envelope_violations(command, previous, LIMITS2)
    assert len(problems) == len(expected), problems
    for problem, pattern in zip(problems, expected):
        assert re.fullmatch(pattern, problem), (problem, pattern)


# --- the envelope: start, position clamps, velocity step ----------------------------------------------------------


@pytest.mark.parametrize("side", [1.0, -1.0])
@pytest.mark.parametrize("target", [1.0, 5.0, 0.0])
def test_a_first_chunk_from_a_trusted_state_outside_the_limits_starts_at_the_limit(side, target):
    """The measured state may read a little outside the limits (within
    state_limit_margin it is trusted): with no command in force the chunk
    starts from it clamped to the limits, so no point leaves them and the
    first step starts inside."""
    limits = JointLimits.from_lists(["a"], [-1.0], [1.0], [0.1])  # 0.01 per period: no step can cover 0.04
    envelope = SafetyEnvelope(limits, PERIOD_S, state_margin=0.05, lead_s=0.0)
    state = np.array([side * 1.04])
    assert envelope.state_problem(state) == ""
    command = envelope.chunk(np.full((5, 1), side * target), state, planned_s=10.0, issued_s=10.0)
    np.testing.assert_allclose(command.origin, [side * 1.0])
    assert np.all(command.positions >= -1.0) and np.all(command.positions <= 1.0), command.positions
    assert envelope_violations(command, np.array([side * 1.0]), limits) == []


def test_a_points_velocity_is_the_slower_of_its_segments_and_zero_where_the_motion_turns():
    positions = np.array([[0.05, 0.0], [0.15, 0.3], [0.25, 0.4], [0.2, 0.4], [0.2, 0.2]])
    durations = np.array([0.1, 0.1, 0.2, 0.1, 0.1])
    # Segment speeds: a 0.5, 1.0, 0.5, -0.5, 0; b 0, 3.0, 0.5, 0, -2.0.
    velocities = point_velocities(np.zeros(2), positions, durations)
    np.testing.assert_allclose(velocities, [[0.5, 0.0], [0.5, 0.5], [0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])


def test_a_measured_state_is_trusted_within_the_margin_on_either_side_only():
    limits = JointLimits.from_lists(["a", "b"], [-1.0, 0.0], [1.0, 2.0], [1.0, 1.0])
    envelope = SafetyEnvelope(limits, PERIOD_S, state_margin=0.05)
    for trusted in ([1.04, 0.0], [-1.04, 2.04], [0.0, -0.04]):
        assert envelope.state_problem(np.array(trusted)) == "", trusted
    for outside, joint in (([1.06, 0.0], "a"), ([-1.06, 0.0], "a"), ([0.0, 2.06], "b"), ([0.0, -0.06], "b")):
        assert f"joint state outside the limits for ['{joint}']" in envelope.state_problem(np.array(outside))
    for bad in ([np.nan, 0.0], [0.0, -np.inf], [0.0]):
        assert "is not finite" in envelope.state_problem(np.array(bad))


def test_a_supervisor_armed_at_a_state_outside_the_limits_starts_its_first_chunk_at_the_limit():
    limits = JointLimits.from_lists(JOINTS, [-1.0] * 6, [1.0] * 6, [0.1] * 6)
    system1 = ScriptedSystem1(lambda positions: np.tile(positions, (16, 1)))
    supervisor = PolicySupervisor(
        ChunkPlanner(system1, PERIOD_S, 1.0, 0.5), SafetyEnvelope(limits, PERIOD_S), start_armed=False
    )
    state = JointStateSample(np.array([1.04, -1.04, 0.0, 0.0, 0.0, 0.0]), 10.0, 10.0)
    assert supervisor.arm(scripted_latents(system1, 10.0), state, 10.0) == ""
    step = supervisor.tick(scripted_latents(system1, 10.0), state, 10.0)
    assert step.mode == Mode.ACTIVE
    np.testing.assert_allclose(step.command.origin, [1.0, -1.0, 0.0, 0.0, 0.0, 0.0])
    assert np.all(np.abs(step.command.positions) <= 1.0)
    assert envelope_violations(step.command, step.command.origin, limits) == []


def test_a_stop_at_the_arm_stops_at_its_measured_pose_clamped_to_the_limits_and_the_next_chunk_starts_there():
    limits = JointLimits.from_lists(["a", "b"], [-1.0, -1.0], [1.0, 1.0], [1.0, 1.0])
    envelope = SafetyEnvelope(limits, PERIOD_S, lead_s=0.0)
    envelope.chunk(np.full((5, 2), 0.5), np.zeros(2), planned_s=10.0, issued_s=10.0)  # a command in force
    setpoint = envelope.setpoint(10.1)  # 0.1 on the way to 0.5
    stop = envelope.stop_at(np.array([1.04, -0.3]), stamp_s=10.05, issued_s=10.1)
    assert stop.hold and stop.stamp_s == 10.05 and stop.issued_s == 10.1
    # Timed for a controller still at the setpoint to get there at the velocity limit: 0.9 rad at 1 rad/s.
    np.testing.assert_allclose(stop.times_s, [0.05 + 0.9])
    assert envelope_violations(stop, setpoint, limits) == []
    np.testing.assert_allclose(stop.positions, [[1.0, -0.3]])
    np.testing.assert_allclose(stop.origin, [1.0, -0.3])
    np.testing.assert_allclose(stop.velocities, [[0.0, 0.0]])
    np.testing.assert_allclose(envelope.setpoint(11.1), [1.0, -0.3])
    near = envelope.stop_at(np.array([1.0, -0.3]), stamp_s=11.1, issued_s=11.1)
    np.testing.assert_allclose(near.times_s, [PERIOD_S])  # one period at least
    after = envelope.chunk(np.full((3, 2), 0.0), np.array([1.04, -0.3]), planned_s=11.3, issued_s=11.3)
    np.testing.assert_allclose(after.origin, [1.0, -0.3])
    assert envelope_violations(after, np.array([1.0, -0.3]), limits) == []


@pytest.mark.parametrize("target", [-1e3, 1e3, -1e300, 1e300])
def test_targets_far_beyond_either_position_limit_end_inside_it(target):
    """Both sides are clamped, each joint to its own limits, to the spline-safe
    limits: 0.35 x max_velocity x period inside the real ones."""
    limits = JointLimits.from_lists(["a", "b"], [-1.0, 0.5], [1.0, 3.0], [1.0, 2.0])
    envelope = SafetyEnvelope(limits, PERIOD_S, lead_s=0.0)
    command = envelope.chunk(np.full((60, 2), target), np.array([0.0, 1.75]), planned_s=10.0, issued_s=10.0)
    assert np.all(command.positions >= limits.lower) and np.all(command.positions <= limits.upper)
    margin = 0.35 * limits.max_velocity * PERIOD_S
    expected = limits.lower + margin if target < 0 else limits.upper - margin
    np.testing.assert_allclose(command.positions[-1], expected)
    assert envelope_violations(command, np.array([0.0, 1.75]), limits) == []


@pytest.mark.parametrize("target", [-50.0, 50.0])
def test_each_step_of_a_chunk_is_bounded_by_the_velocity_limit(target):
    """A chunk that asks for a jump gets a ramp at max_velocity, joint by
    joint, from the measured state and then from the setpoint in force."""
    limits = JointLimits.from_lists(["a", "b"], [-100.0, -100.0], [100.0, 100.0], [1.0, 3.0])
    envelope = SafetyEnvelope(limits, PERIOD_S, lead_s=0.0, follow_lag_s=100.0)
    first = envelope.chunk(np.full((4, 2), target), np.zeros(2), planned_s=10.0, issued_s=10.0)
    sign = np.sign(target)
    np.testing.assert_allclose(first.positions, sign * np.outer([1, 2, 3, 4], [0.1, 0.3]))
    second = envelope.chunk(np.full((4, 2), target), np.zeros(2), planned_s=10.2, issued_s=10.2)
    np.testing.assert_allclose(second.origin, sign * np.array([0.2, 0.6]), atol=1e-9)
    np.testing.assert_allclose(second.positions, sign * np.outer([3, 4, 5, 6], [0.1, 0.3]), atol=1e-9)


# --- joint limits: what is missing, the URDF, the tighter of both -------------------------------------------------

URDF = """<robot name="test">
  <joint name="a" type="revolute"><limit lower="-1.5" upper="1.25" velocity="2.5" effort="3"/></joint>
  <joint name="b" type="continuous"><limit velocity="4.0" effort="1"/></joint>
  <joint name="c" type="prismatic"><limit lower="0.01" upper="0.04" velocity="0.1" effort="1"/></joint>
  <joint name="d" type="revolute"><limit lower="-1.0" upper="1.0" velocity="0" effort="1"/></joint>
  <joint name="e" type="revolute"/>
  <joint name="mount" type="fixed"/>
</robot>"""


@pytest.mark.parametrize(
    "lower, upper, velocity, missing",
    [
        ([-1.0, -1.0], [1.0, np.inf], [1.0, 1.0], "no position limits for ['b']"),
        ([-np.inf, -1.0], [1.0, 1.0], [1.0, 1.0], "no position limits for ['a']"),
        ([-1.0, -1.0], [1.0, 1.0], [1.0, np.inf], "no velocity limits for ['b']"),
        ([-1.0, -1.0], [1.0, 1.0], [], "no velocity limits for ['a', 'b']"),
        ([], [], [1.0, 1.0], "no position limits for ['a', 'b']"),
    ],
)
def test_limits_missing_names_every_joint_without_both_position_limits_and_a_velocity_limit(
    lower, upper, velocity, missing
):
    limits = JointLimits.from_lists(["a", "b"], lower, upper, velocity)
    assert missing in limits.missing()
    assert JointLimits.from_lists(["a", "b"], [-1.0] * 2, [1.0] * 2, [1.0] * 2).missing() == ""


def test_a_continuous_urdf_joint_needs_no_position_limits_but_a_velocity_limit():
    urdf = JointLimits.from_urdf(URDF, ["b"])
    assert urdf.continuous.tolist() == [True] and urdf.missing() == ""
    no_velocity = JointLimits.from_urdf('<robot><joint name="b" type="continuous"/></robot>', ["b"])
    assert no_velocity.missing().startswith("no velocity limits for ['b']")
    # The params file's velocity with the URDF's continuity: complete.
    assert JointLimits.from_lists(["b"], [], [], [1.0]).tighter(no_velocity).missing() == ""


@pytest.mark.parametrize(
    "lower, upper", [([-1.0] * 5 + [0.0], [1.0] * 5 + [np.inf]), ([-1.0] * 5 + [-np.inf], [1.0] * 6)]
)
def test_the_supervisor_stays_disarmed_while_a_joint_has_one_position_limit(lower, upper):
    system1 = ScriptedSystem1(lambda positions: np.tile(positions, (16, 1)))
    limits = JointLimits.from_lists(JOINTS, lower, upper, [1.0] * 6)
    latents, state = scripted_latents(system1, 10.0), JointStateSample(np.zeros(6), 10.0, 10.0)
    complete = limits.tighter(JointLimits.from_lists(JOINTS, [-1.0] * 6, [1.0] * 6, []))  # as a URDF completes them
    assert complete.missing() == ""
    for start_armed in (True, False):
        supervisor = PolicySupervisor(
            ChunkPlanner(system1, PERIOD_S, 1.0, 0.5), SafetyEnvelope(limits, PERIOD_S), start_armed=start_armed
        )
        assert "no position limits for ['gripper']" in supervisor.arm(latents, state, 10.0)
        for _ in range(3):
            step = supervisor.tick(latents, state, 10.0)
            assert step.mode == Mode.DISARMED and step.command is None
            assert "no position limits for ['gripper']" in step.reason
        # Complete limits: a simulation arms by itself, a robot on request.
        supervisor.set_limits(complete)
        if not start_armed:
            assert supervisor.tick(latents, state, 10.0).mode == Mode.DISARMED
            assert supervisor.arm(latents, state, 10.0) == ""
        assert supervisor.tick(latents, state, 10.0).mode == Mode.ACTIVE


def test_urdf_limits_are_parsed_per_joint_type():
    names = ["a", "b", "c", "d", "e", "not_in_urdf"]
    urdf = JointLimits.from_urdf(URDF, names)
    inf = np.inf
    np.testing.assert_array_equal(urdf.lower, [-1.5, -inf, 0.01, -1.0, -inf, -inf])
    np.testing.assert_array_equal(urdf.upper, [1.25, inf, 0.04, 1.0, inf, inf])
    # Velocity 0 (d), no <limit> (e) and a joint the URDF lacks: unknown.
    np.testing.assert_array_equal(urdf.max_velocity, [2.5, 4.0, 0.1, inf, inf, inf])
    assert urdf.continuous.tolist() == [False, True, False, False, False, False]
    assert urdf.joint_names == tuple(names)
    missing = urdf.missing()
    assert "no position limits for ['e', 'not_in_urdf']" in missing
    assert "no velocity limits for ['d', 'e', 'not_in_urdf']" in missing


def test_the_urdfs_tighter_limits_win_on_each_side_and_the_lower_velocity_wins():
    names = ["a", "c"]
    urdf = JointLimits.from_urdf(URDF, names)  # a: [-1.5, 1.25] at 2.5; c: [0.01, 0.04] at 0.1
    params = JointLimits.from_lists(names, [-2.0, 0.02], [1.0, 0.5], [3.0, 0.05])
    for both in (params.tighter(urdf), urdf.tighter(params)):
        np.testing.assert_array_equal(both.lower, [-1.5, 0.02])  # a: the URDF's; c: the params file's
        np.testing.assert_array_equal(both.upper, [1.0, 0.04])  # a: the params file's; c: the URDF's
        np.testing.assert_array_equal(both.max_velocity, [2.5, 0.05])
        assert both.joint_names == tuple(names) and both.missing() == ""


def test_a_urdf_looser_than_the_params_file_or_silent_changes_nothing():
    names = ["a", "b", "not_in_urdf"]
    params = JointLimits.from_lists(names, [-1.0, -0.5, -0.25], [1.0, 0.5, 0.25], [1.0, 2.0, 0.5])
    for urdf in (JointLimits.from_urdf(URDF, names), JointLimits.unknown(names)):
        both = params.tighter(urdf)
        np.testing.assert_array_equal(both.lower, params.lower)
        np.testing.assert_array_equal(both.upper, params.upper)
        np.testing.assert_array_equal(both.max_velocity, params.max_velocity)


@pytest.mark.parametrize("lower, upper", [([1.3], [2.0]), ([-3.0], [-1.6])])
def test_limits_that_leave_no_range_between_them_are_refused(lower, upper):
    with pytest.raises(ValueError, match=r"no range for joints \['a'\]"):
        JointLimits.from_lists(["a"], lower, upper, [1.0]).tighter(JointLimits.from_urdf(URDF, ["a"]))


def test_the_urdfs_tighter_limits_bind_the_commands():
    """From the URDF to the supervisor's commands: set_limits with the
    tighter of both, then a policy asking for beyond them gets them."""
    system1 = ScriptedSystem1(lambda positions: np.full((16, 6), 10.0))
    params = JointLimits.from_lists(JOINTS, [-2.0] * 6, [2.0] * 6, [3.0] * 6)
    urdf = JointLimits.from_urdf(
        "<robot>"
        + "".join(
            f'<joint name="{n}" type="revolute"><limit lower="-0.5" upper="0.25" velocity="0.5"/></joint>'
            for n in JOINTS
        )
        + "</robot>",
        JOINTS,
    )
    supervisor = PolicySupervisor(
        ChunkPlanner(system1, PERIOD_S, 1.0, 0.5), SafetyEnvelope(params, PERIOD_S), start_armed=True
    )
    supervisor.set_limits(params.tighter(urdf))
    now, top = 10.0, np.zeros(6)
    for _ in range(40):
        now += PERIOD_S
        state = JointStateSample(top.copy(), now, now)  # an arm that follows its last point
        step = supervisor.tick(scripted_latents(system1, now), state, now)
        assert step.mode == Mode.ACTIVE
        assert np.all(step.command.positions <= 0.25) and np.all(np.abs(step.command.velocities) <= 0.5 + 1e-9)
        top = step.command.positions[0]
    np.testing.assert_allclose(top, 0.25 - 0.35 * 0.5 * PERIOD_S)


# --- the planner: staleness and future stamps, at their boundaries ------------------------------------------------

MAX_LATENTS_AGE_S, MAX_STATE_AGE_S, MAX_LEAD_S = 0.875, 0.25, 0.125  # binary-exact: boundaries compare exactly


@pytest.fixture(scope="module")
def tiny_system1(tiny_checkpoint):
    return load_system1(tiny_checkpoint, device="cpu")


@pytest.fixture(scope="module")
def planner(tiny_system1):
    return ChunkPlanner(
        tiny_system1, PERIOD_S, MAX_LATENTS_AGE_S, MAX_STATE_AGE_S, num_inference_steps=2, max_stamp_lead_s=MAX_LEAD_S
    )


def tiny_latents(system1, stamp_ns, spatial=None, motion=None, model_id=None) -> LatentsSample:
    width = system1.config.context_dim
    spatial = np.zeros((16, width), np.float32) if spatial is None else spatial
    motion = np.zeros((16, width), np.float32) if motion is None else motion
    return LatentsSample(
        hand_made_latents(system1, spatial, motion), stamp_ns, 1, system1.model_id if model_id is None else model_id
    )


MS = 1e-3


@pytest.mark.parametrize(
    "now, state_stamp, received, latents_ns, reason",
    [
        (16.0, 16.0, None, 16_000_000_000, ""),
        # Joint state age: max_joint_state_age_s is still fresh; just beyond is stale.
        (16.0, 16.0 - MAX_STATE_AGE_S, None, 16_000_000_000, ""),
        (16.0, 16.0 - MAX_STATE_AGE_S + MS, None, 16_000_000_000, ""),
        (16.0, 16.0 - MAX_STATE_AGE_S - MS, None, 16_000_000_000, "joint state is 0.25 s old (max 0.25)"),
        (16.0, 14.0, 16.0, 16_000_000_000, "joint state is 2.00 s old"),  # by its stamp, though received now
        # Joint state stamped ahead: up to max_stamp_lead_s is tolerated.
        (16.0, 16.0 + MAX_LEAD_S, 16.0, 16_000_000_000, ""),
        (16.0, 16.0 + MAX_LEAD_S - MS, None, 16_000_000_000, ""),
        (16.0, 16.0 + MAX_LEAD_S + MS, 16.0, 16_000_000_000, "joint state stamped 0.13 s in the future"),
        (16.0, 16.0 + MAX_LEAD_S + MS, None, 16_000_000_000, "joint state stamped 0.13 s in the future"),
        (16.0, 21.0, 16.0, 16_000_000_000, "joint state stamped 5.00 s in the future"),
        # ... and then ages from its receipt: it cannot stay fresh by its stamp.
        (16.0, 16.1, 15.5, 16_000_000_000, "joint state is 0.50 s old"),
        # Latents age: max_latents_age_s is still fresh; just beyond is stale.
        (17.0, 17.0, None, 16_125_000_000, ""),
        (16.0, 16.0, None, 15_126_000_000, ""),
        (16.0, 16.0, None, 15_124_000_000, "latents are 0.88 s old (max 0.875)"),
        (16.0, 16.0, None, 10_000_000_000, "latents are 6.00 s old"),
        # Latents stamped ahead: up to max_stamp_lead_s is tolerated.
        (16.0, 16.0, None, 16_125_000_000, ""),
        (16.0, 16.0, None, 16_124_000_000, ""),
        (16.0, 16.0, None, 16_126_000_000, "latents stamped 0.13 s in the future"),
        (16.0, 16.0, None, 26_000_000_000, "latents stamped 10.00 s in the future"),
    ],
    ids=[
        "fresh",
        "state-at-max-age",
        "state-just-within-max-age",
        "state-just-beyond-max-age",
        "state-old-by-stamp",
        "state-at-max-lead",
        "state-just-within-max-lead",
        "state-just-beyond-max-lead",
        "state-just-beyond-max-lead-unreceived",
        "state-far-future",
        "state-future-ages-from-receipt",
        "latents-at-max-age",
        "latents-just-within-max-age",
        "latents-just-beyond-max-age",
        "latents-stale",
        "latents-at-max-lead",
        "latents-just-within-max-lead",
        "latents-just-beyond-max-lead",
        "latents-far-future",
    ],
)
def test_the_planner_refuses_stale_and_future_stamped_inputs_beyond_their_limits_only(
    planner, now, state_stamp, received, latents_ns, reason
):
    # The boundary cases compare exactly (test_boundary_inputs_are_exact_in_binary).
    state = JointStateSample(np.zeros(6), state_stamp, received)
    problem = planner.input_problem(tiny_latents(planner.system1, latents_ns), state, now)
    if reason:
        assert reason in problem
    else:
        assert problem == ""


def test_boundary_inputs_are_exact_in_binary():
    assert 16.0 - (16.0 - MAX_STATE_AGE_S) == MAX_STATE_AGE_S and (16.0 + MAX_LEAD_S) - 16.0 == MAX_LEAD_S
    assert 17.0 - 16_125_000_000 * 1e-9 == MAX_LATENTS_AGE_S and 16.0 - 16_125_000_000 * 1e-9 == -MAX_LEAD_S


def test_future_stamped_latents_make_the_plan_hold(planner):
    plan = planner.plan(tiny_latents(planner.system1, 26_000_000_000), JointStateSample(np.zeros(6), 16.0, 16.0), 16.0)
    assert plan.mode == Mode.HOLD and plan.positions is None and "in the future" in plan.reason
    fresh = planner.plan(tiny_latents(planner.system1, 16_000_000_000), JointStateSample(np.zeros(6), 16.0, 16.0), 16.0)
    assert fresh.mode == Mode.ACTIVE


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda s, w: tiny_latents(s, 16_000_000_000, model_id="other@v1:0"), "latents from model 'other@v1:0'"),
        (
            lambda s, w: tiny_latents(s, 16_000_000_000, spatial=np.zeros((16, w + 1), np.float32)),
            "spatial tokens shaped (16, {w1}), expected (N, {w})",
        ),
        (
            lambda s, w: tiny_latents(s, 16_000_000_000, motion=np.zeros((16, w - 1), np.float32)),
            "motion tokens shaped (16, {w_1}), expected (N, {w})",
        ),
        (lambda s, w: tiny_latents(s, 16_000_000_000, motion=np.zeros((0, w), np.float32)), "motion tokens shaped (0,"),
        (
            lambda s, w: tiny_latents(s, 16_000_000_000, spatial=np.zeros((16,), np.float32)),
            "spatial tokens shaped (16,)",
        ),
        (
            lambda s, w: tiny_latents(s, 16_000_000_000, spatial=np.full((16, w), np.nan, np.float32)),
            "spatial tokens contain NaN or Inf",
        ),
        (
            lambda s, w: tiny_latents(s, 16_000_000_000, motion=np.full((16, w), np.inf, np.float32)),
            "motion tokens contain NaN or Inf",
        ),
    ],
    ids=[
        "other-model",
        "wide-spatial",
        "narrow-motion",
        "no-motion-tokens",
        "flat-spatial",
        "nan-spatial",
        "inf-motion",
    ],
)
def test_the_planner_refuses_latents_from_another_model_malformed_or_non_finite(planner, make, reason):
    width = planner.system1.config.context_dim
    sample = make(planner.system1, width)
    problem = planner.input_problem(sample, JointStateSample(np.zeros(6), 16.0, 16.0), 16.0)
    assert reason.format(w=width, w1=width + 1, w_1=width - 1) in problem
    assert planner.check_latents(sample) == problem


# --- the controller model: Hermite and linear interpolation against closed forms ---------------------------------


def hermite(p0, v0, p1, v1, duration, u):
    """Cubic Hermite position, written out as in the literature."""
    return (
        (2 * u**3 - 3 * u**2 + 1) * p0
        + (u**3 - 2 * u**2 + u) * duration * v0
        + (-2 * u**3 + 3 * u**2) * p1
        + (u**3 - u**2) * duration * v1
    )


def test_the_tracker_follows_cubic_hermite_splines_between_points_with_velocities():
    tracker = TrajectoryTracker(np.zeros(2))
    p1, v1, p2, v2 = np.array([1.0, -1.0]), np.array([0.5, -2.0]), np.array([2.0, 0.5]), np.array([0.0, 1.0])
    p3 = np.array([2.5, 1.0])  # at rest, as the envelope's commands end
    tracker.command(
        Trajectory(10.0, np.array([1.0, 3.0, 3.5]), np.stack([p1, p2, p3]), np.stack([v1, v2, np.zeros(2)])), now_s=10.0
    )
    # Worked by hand at the segments' midpoints (u = 1/2: h00 = h01 = 1/2, h10 = -h11 = 1/8).
    position, velocity = tracker.sample(10.5)  # from rest at 0 to p1, T = 1
    np.testing.assert_allclose(position, [0.4375, -0.25], atol=1e-12)
    np.testing.assert_allclose(velocity, [1.375, -1.0], atol=1e-12)
    position, velocity = tracker.sample(11.0)
    np.testing.assert_allclose(position, p1, atol=1e-12)
    np.testing.assert_allclose(velocity, v1, atol=1e-12)
    position, velocity = tracker.sample(12.0)  # p1 to p2, T = 2
    np.testing.assert_allclose(position, [1.625, -1.0], atol=1e-12)
    np.testing.assert_allclose(velocity, [0.625, 1.375], atol=1e-12)
    # Elsewhere against the closed form; the velocity against its numerical derivative.
    segments = [
        (10.0, 1.0, np.zeros(2), np.zeros(2), p1, v1),
        (11.0, 2.0, p1, v1, p2, v2),
        (13.0, 0.5, p2, v2, p3, np.zeros(2)),
    ]
    for start, duration, a, va, b, vb in segments:
        for u in (0.1, 0.25, 0.6, 0.75, 0.9):
            position, velocity = tracker.sample(start + u * duration)
            np.testing.assert_allclose(position, hermite(a, va, b, vb, duration, u), atol=1e-12)
            h = 1e-6
            numeric = (hermite(a, va, b, vb, duration, u + h) - hermite(a, va, b, vb, duration, u - h)) / (
                2 * h * duration
            )
            np.testing.assert_allclose(velocity, numeric, atol=1e-6)
    # After the last point it holds it, at rest.
    for t in (13.5, 14.0, 100.0):
        position, velocity = tracker.sample(t)
        np.testing.assert_allclose(position, p3)
        np.testing.assert_allclose(velocity, [0.0, 0.0])


def test_the_tracker_interpolates_linearly_without_velocities_and_holds_after_the_last_point():
    tracker = TrajectoryTracker(np.array([0.0, 0.0]))
    tracker.command(Trajectory(20.0, np.array([0.5, 1.0]), np.array([[1.0, 2.0], [0.0, 2.0]])), now_s=20.0)
    for t, position, velocity in [
        (20.25, [0.5, 1.0], [2.0, 4.0]),
        (20.5, [1.0, 2.0], [-2.0, 0.0]),
        (20.75, [0.5, 2.0], [-2.0, 0.0]),
        (21.0, [0.0, 2.0], [0.0, 0.0]),
        (22.0, [0.0, 2.0], [0.0, 0.0]),
    ]:
        sampled = tracker.sample(t)
        np.testing.assert_allclose(sampled[0], position, atol=1e-12, err_msg=str(t))
        np.testing.assert_allclose(sampled[1], velocity, atol=1e-12, err_msg=str(t))


# --- peak setpoint speed under adversarial chunks ----------------------------------------------------------------


PEAK_SPEED_BOUND = 2.2  # SafetyEnvelope.spline_safe_limits: take-over velocities reach 2.2x at most


def test_the_setpoint_between_points_stays_under_2_2x_the_velocity_limit_under_adversarial_chunks():
    """The envelope's commands replayed through the controller's spline,
    sampled every 2 ms: between points the setpoint may run faster than
    the points' speeds (docs/execution.md reports the figure), never 2.2x."""
    rng = np.random.default_rng(2)
    peak, commands = 0.0, 0
    for _ in range(120):
        limits = random_limits(rng)
        envelope = SafetyEnvelope(limits, PERIOD_S)
        tracker, last, now = None, None, 100.0
        for _ in range(30):
            gap = rng.choice([0.0, 0.01, 0.01, 0.03, PERIOD_S, 0.35])
            if tracker is not None:
                for t in np.arange(last, now + gap, 0.002):
                    position, velocity = tracker.sample(t)
                    assert np.all(position >= limits.lower - 1e-9) and np.all(position <= limits.upper + 1e-9)
                    peak = max(peak, float(np.max(np.abs(velocity) / limits.max_velocity)))
            now, last = now + gap, now + gap
            state = rng.uniform(limits.lower, limits.upper)
            if rng.random() < 0.85:
                planned = now - rng.choice([0.0, 0.03, 0.25])
                command = envelope.chunk(random_targets(rng, limits, int(rng.integers(1, 20))), state, planned, now)
            else:
                command = envelope.hold(now)
            if command is None:
                continue
            if tracker is None:
                tracker = TrajectoryTracker(np.clip(state, limits.lower, limits.upper))
            assert envelope_violations(command, tracker.reference(now), limits) == []
            tracker.command(Trajectory(command.stamp_s, command.times_s, command.positions, command.velocities), now)
            commands += 1
    print(f"peak setpoint speed {peak:.2f}x max_joint_velocity over {commands} commands (bound {PEAK_SPEED_BOUND}x)")
    assert commands > 2500
    assert 1.0 < peak < PEAK_SPEED_BOUND


# --- the supervisor loop -------------------------------------------------------------------


def policy_params(**overrides) -> PolicyParams:
    """The shipped parameters at 30 Hz, with the SO-101's gripper joint (its robot profile's)."""
    return node_params(
        PolicyParams,
        PARAMS_FILE,
        "video2act_policy",
        {"action_period_s": TICK_S, "gripper_joint_names": ["gripper"], **overrides},
    )


def params_limits(params: PolicyParams) -> JointLimits:
    return JointLimits.from_lists(
        params.joint_names, params.joint_lower_limits, params.joint_upper_limits, params.max_joint_velocity
    )


class Replay:
    """joint_trajectory_controller as the judge: every command replaces the
    last at its issue time, and must be inside the envelope from the
    setpoint in force then; `history` keeps the setpoint as time goes on."""

    def __init__(self, limits: JointLimits):
        self.limits = limits
        self.tracker: TrajectoryTracker | None = None
        self.history: list[tuple[float, np.ndarray]] = []

    def receive(self, command: JointCommand, measured: np.ndarray) -> None:
        if self.tracker is None:
            self.tracker = TrajectoryTracker(np.clip(measured, self.limits.lower, self.limits.upper))
        previous = self.tracker.reference(command.issued_s)
        problems = envelope_violations(command, previous, self.limits)
        assert not problems, (problems, previous, command.positions)
        self.tracker.command(
            Trajectory(command.stamp_s, command.times_s, command.positions, command.velocities), command.issued_s
        )

    def advance(self, until_s: float, step_s: float = 0.005) -> None:
        if self.tracker is None:
            return
        start = self.history[-1][0] + step_s if self.history else until_s
        for t in np.arange(start, until_s + 1e-12, step_s):
            self.history.append((t, self.tracker.reference(t)))

    def setpoint_at(self, time_s: float) -> np.ndarray:
        """The setpoint at a moment of the last second, interpolated."""
        recent = self.history[-200:]
        times = np.array([t for t, _ in recent])
        values = np.stack([p for _, p in recent])
        return np.array([np.interp(time_s, times, values[:, j]) for j in range(values.shape[1])])

    def forget(self) -> None:
        self.tracker = None


@pytest.mark.parametrize("timing", ["steady", "jittered"])
def test_every_point_stays_within_reach_of_an_arm_that_stands_still_whatever_the_policy_asks(timing):
    """The arm does not follow (a controller inactive, say) and the policy
    asks to run away, in changing directions, every tick for two minutes
    at 30 Hz: every point lies within max_velocity x (its time since the
    state + follow_lag_s) of the measured state, the gripper aside (it is
    unfollowed), and no step from the setpoint in force exceeds the limit.

    With steady delays (state transport, inference) the bound is exact.
    Where they jitter, a newer state can shrink the reach of a moment below
    where the setpoint in force already is, and the step bound wins (the
    envelope's docstring): points then lie beyond the reach by at most the
    jitter's span at max_velocity, and never walk further."""
    params = policy_params()
    limits = params_limits(params)
    grippers = np.isin(params.joint_names, params.gripper_joint_names)
    assert grippers.any() and not grippers.all()
    rng = np.random.default_rng(3)
    if timing == "steady":
        state_lag, publish_delay = (0.01, 0.01), (0.012, 0.012)
    else:
        state_lag, publish_delay = (0.0, 0.03), (0.0, 0.03)
    slack_s = (state_lag[1] - state_lag[0]) + (publish_delay[1] - publish_delay[0])
    wanted = {"direction": np.ones(6)}
    system1 = ScriptedSystem1(lambda positions: np.tile(positions + 10.0 * wanted["direction"], (16, 1)))
    planner = ChunkPlanner(
        system1,
        params.action_period_s,
        params.max_latents_age_s,
        params.max_joint_state_age_s,
        max_stamp_lead_s=params.max_stamp_lead_s,
    )
    envelope = SafetyEnvelope(
        limits,
        params.action_period_s,
        params.state_limit_margin,
        params.command_lead_s,
        params.follow_lag_s,
        unfollowed=grippers,
    )
    supervisor = PolicySupervisor(planner, envelope, start_armed=True)  # no watchdog: it would stop this arm
    replay = Replay(limits)
    arm = np.where(grippers, limits.lower, (limits.lower + limits.upper) / 2)  # the gripper: further than its reach
    reach_used, beyond_s, gripper_beyond = 0.0, 0.0, False
    for tick in range(3600):
        now = 100.0 + tick * TICK_S
        if tick % 45 == 0 or rng.random() < 0.05:
            wanted["direction"] = rng.choice([-1.0, 1.0], 6)
        state = JointStateSample(arm.copy(), now - rng.uniform(*state_lag), now)
        step = supervisor.tick(
            scripted_latents(system1, now - 0.05),
            state,
            now,
            publish_time=lambda plan, now=now: now + rng.uniform(*publish_delay),
        )
        assert step.mode == Mode.ACTIVE, step.reason
        command = step.command
        assert command.stamp_s == state.stamp_s  # points are timed from the state
        reach = limits.max_velocity * (command.times_s[:, None] + params.follow_lag_s)
        distance = np.abs(command.positions - arm)
        arm_joints = ~grippers
        assert np.all(
            distance[:, arm_joints] <= reach[:, arm_joints] + limits.max_velocity[arm_joints] * slack_s + 1e-9
        ), (tick, distance, reach)
        reach_used = max(reach_used, float(np.max(distance[:, arm_joints] / reach[:, arm_joints])))
        beyond_s = max(beyond_s, float(np.max((distance - reach)[:, arm_joints] / limits.max_velocity[arm_joints])))
        gripper_beyond |= bool(np.any(distance[:, grippers] > reach[:, grippers]))
        replay.receive(command, arm)  # no step from the setpoint in force above the limit
    print(
        f"{timing}: closest to the reach bound {reach_used:.3f} of it, beyond it by {max(beyond_s, 0):.3f} s "
        f"at max velocity (allowed {slack_s:.3f} s)"
    )
    assert reach_used > 0.99  # the policy did push against the bound
    assert gripper_beyond  # the unfollowed gripper is not held to the arm


# --- the follow watchdog ----------------------------------------------------------------------------------------

LAG_S, TOLERANCE, TIMEOUT_S = 0.2, 0.3, 0.5


def test_the_watchdog_trips_within_its_timeout_of_the_first_state_that_did_not_follow():
    """The setpoint steps 1 rad away at 1.0 s and the arm stays: the first
    state that does not follow is the first stamped more than lag_s after
    the step (until then the arm may still be lagging); the watchdog trips
    on the first state timeout_s after it, not before, not a tick later."""
    watchdog = FollowWatchdog(LAG_S, TOLERANCE, TIMEOUT_S)
    names = ("a", "b")
    tripped, first_bad = None, None
    for k in range(90):
        t = k * TICK_S
        watchdog.record(t, np.array([0.0, 1.0 if t >= 1.0 else 0.0]))
        stamp = t + 0.005  # a state just after the setpoint was noted
        if first_bad is None and stamp > 1.0 + LAG_S:
            first_bad = stamp
        fault = watchdog.check(np.zeros(2), stamp, names)
        if fault:
            tripped = stamp
            break
    assert first_bad is not None and tripped is not None
    assert first_bad + TIMEOUT_S - 1e-9 <= tripped <= first_bad + TIMEOUT_S + TICK_S + 1e-9, (first_bad, tripped)
    assert "not executing our trajectories" in fault and "b is 1.00 rad" in fault
    # Each state counts once: one already seen (or older) says nothing new.
    assert watchdog.check(np.zeros(2), tripped, names) == ""
    # reset: nothing commanded any more; a new walk-away needs its own full timeout.
    watchdog.reset()
    for k in range(1, 40):
        t = tripped + k * TICK_S
        watchdog.record(t, np.array([0.0, 1.0]))
        fault = watchdog.check(np.zeros(2), t + 0.005, names)
        if fault:
            break
    assert fault and (k - 1) * TICK_S >= TIMEOUT_S - 1e-9, k


def test_the_watchdog_never_trips_on_an_arm_that_follows_within_its_lag_and_tolerance():
    watchdog = FollowWatchdog(LAG_S, TOLERANCE, TIMEOUT_S)

    def setpoint(t):
        return np.array([np.sin(1.5 * t), 0.8 * np.cos(2.0 * t), 0.5 * t % 1.0])

    for k in range(1800):  # 60 s at 30 Hz
        t = k * TICK_S
        watchdog.record(t, setpoint(t))
        stamp = t + 0.01
        arm = setpoint(stamp - 0.15) + np.array([0.25, -0.25, 0.0])  # lagging 0.15 s, 0.25 off
        assert watchdog.check(arm, stamp, ("a", "b", "c")) == "", k


def test_the_watchdog_ignores_unwatched_joints():
    watchdog = FollowWatchdog(LAG_S, TOLERANCE, TIMEOUT_S, unwatched=np.array([False, True]))
    for k in range(600):
        t = k * TICK_S
        watchdog.record(t, np.array([0.1 * t, 1.0]))  # the gripper closes on an object: it stays at 0
        assert watchdog.check(np.array([0.1 * t, 0.0]), t + 0.01, ("arm", "gripper")) == ""
    np.testing.assert_allclose(watchdog.error(np.array([0.1 * t, 0.0]), t + 0.01), [0.0, 0.0])
    # The same arm watched on both joints does trip.
    watched = FollowWatchdog(LAG_S, TOLERANCE, TIMEOUT_S, unwatched=np.array([False, False]))
    faults = []
    for k in range(60):
        watched.record(k * TICK_S, np.array([0.0, 1.0]))
        faults.append(watched.check(np.zeros(2), k * TICK_S + 0.01, ("arm", "gripper")))
    assert any("gripper is 1.00 rad" in fault for fault in faults)


def test_the_watchdog_refuses_nonsense_settings():
    for lag, tolerance, timeout in [(-0.1, 0.3, 0.5), (0.2, 0.0, 0.5), (0.2, 0.3, 0.0)]:
        with pytest.raises(ValueError, match="watchdog needs"):
            FollowWatchdog(lag, tolerance, timeout)


def run_standing_arm(supervisor, system1, replay, arm, ticks, start_s):
    """Tick with an arm that stands still; (tick times, state stamps, steps)."""
    out = []
    for tick in range(ticks):
        now = start_s + tick * TICK_S
        state = JointStateSample(arm.copy(), now - 0.01, now)
        step = supervisor.tick(scripted_latents(system1, now - 0.05), state, now)
        out.append((now, state, step))
        if step.command is not None and not step.command.hold:
            replay.receive(step.command, arm)
        at = step.command.issued_s if step.command is not None else now
        if replay.tracker is not None and not supervisor.fault:
            replay.history.append((at, replay.tracker.reference(at)))
    return out


def first_state_not_following(replay, states, grippers, lag_s, tolerance):
    """The first state further than `tolerance` (a watched joint) from every
    setpoint commanded over the `lag_s` before it (the one in force at the
    window's start included)."""
    for state in states:
        window = [p for t, p in replay.history if state.stamp_s - lag_s <= t <= state.stamp_s]
        before = [p for t, p in replay.history if t < state.stamp_s - lag_s]
        window += before[-1:]
        if not window:
            continue
        distance = np.min(np.abs(np.stack(window) - state.positions), axis=0)
        if np.any(distance[~grippers] > tolerance):
            return state
    return None


@pytest.mark.parametrize("resume", ["arm", "reset"])
def test_the_supervisor_stops_an_arm_that_does_not_follow_once_and_holds_until_armed_or_reset(resume):
    params = policy_params()
    limits = params_limits(params)
    grippers = np.isin(params.joint_names, params.gripper_joint_names)
    system1 = ScriptedSystem1(lambda positions: np.tile(positions + 10.0, (16, 1)))
    supervisor = build_supervisor(system1, params, limits, start_armed=True)
    assert supervisor.watchdog is not None
    arm = np.array([0.1, -0.2, 0.3, 0.0, 0.5, -0.03])  # the gripper reads just below its limit (0): trusted
    pose = np.clip(arm, limits.lower, limits.upper)
    assert pose[-1] == 0.0
    replay = Replay(limits)
    steps = run_standing_arm(supervisor, system1, replay, arm, int(3.0 / TICK_S), 100.0)
    trip = next(i for i, (_, _, step) in enumerate(steps) if step.mode != Mode.ACTIVE)
    now, state, step = steps[trip]
    # Within timeout_s (+ one tick) of the first state that did not follow, not before.
    first_bad = first_state_not_following(
        replay, [s for _, s, _ in steps], grippers, params.follow_lag_s, params.follow_tolerance
    )
    assert first_bad is not None
    delay = state.stamp_s - first_bad.stamp_s
    assert params.follow_timeout_s - 1e-9 <= delay <= params.follow_timeout_s + TICK_S + 1e-9, delay
    # One stop at the measured pose, then holds that say why, without commands.
    assert step.mode == Mode.HOLD and "not executing our trajectories" in step.reason
    assert step.command is not None and step.command.hold
    np.testing.assert_allclose(step.command.positions, [pose])
    np.testing.assert_allclose(step.command.velocities, np.zeros((1, 6)))
    np.testing.assert_allclose(step.command.origin, pose)
    assert envelope_violations(step.command, pose, limits) == []
    in_force = replay.tracker.reference(step.command.issued_s)
    print(
        f"the stop from the setpoint in force ({np.abs(in_force - pose).max():.2f} rad away): "
        f"{envelope_violations(step.command, in_force, limits)}"
    )
    assert "not executing our trajectories" in supervisor.fault
    assert len(steps) - trip > 30
    for _, _, later in steps[trip + 1 :]:
        assert later.mode == Mode.HOLD and later.command is None and "not executing our trajectories" in later.reason
    # arm() (or a new episode) clears the fault: the next chunk starts from the measured state.
    now = steps[-1][0] + TICK_S
    state = JointStateSample(arm.copy(), now - 0.01, now)
    latents = scripted_latents(system1, now - 0.05)
    if resume == "arm":
        assert supervisor.arm(latents, state, now) == ""
    else:
        supervisor.reset()
    assert supervisor.fault == ""
    step = supervisor.tick(latents, state, now)
    assert step.mode == Mode.ACTIVE and step.command is not None, step.reason
    np.testing.assert_allclose(step.command.origin, pose)
    # ... and the watchdog starts afresh: no fault for timeout_s, then the same stop again.
    replay = Replay(limits)
    replay.receive(step.command, arm)
    replay.history.append((now, replay.tracker.reference(now)))
    more = run_standing_arm(supervisor, system1, replay, arm, int(3.0 / TICK_S), now + TICK_S)
    again = next(i for i, (_, _, step) in enumerate(more) if step.mode != Mode.ACTIVE)
    assert more[again][1].stamp_s - state.stamp_s >= params.follow_timeout_s
    assert more[again][2].command is not None and more[again][2].command.hold


def test_the_supervisor_never_stops_an_arm_that_follows_with_its_gripper_held_short():
    """The arm lags its setpoint by 0.15 s (follow_lag_s is 0.2); the
    gripper closes on an object and stays open: a minute without a fault."""
    params = policy_params()
    limits = params_limits(params)
    grippers = np.isin(params.joint_names, params.gripper_joint_names)
    centre = (limits.lower + limits.upper) / 2
    clock = {"now": 0.0}

    def policy(positions):
        times = clock["now"] + TICK_S * np.arange(1, 17)
        targets = centre + 0.6 * np.sin(np.outer(times, [0.7, 1.1, 0.9, 1.3, 0.5, 0.0]))
        targets[:, grippers] = limits.upper[grippers]  # close
        return targets

    system1 = ScriptedSystem1(policy)
    supervisor = build_supervisor(system1, params, limits, start_armed=True)
    replay = Replay(limits)
    arm = centre.copy()
    for tick in range(1800):
        now = 100.0 + tick * TICK_S
        clock["now"] = now
        stamp = now - 0.01
        if replay.tracker is not None:
            replay.advance(now)
            arm = replay.setpoint_at(stamp - 0.15)
            arm[grippers] = centre[grippers]  # held short by the object
        step = supervisor.tick(scripted_latents(system1, now - 0.05), JointStateSample(arm.copy(), stamp, now), now)
        assert step.mode == Mode.ACTIVE and supervisor.fault == "", (tick, step.reason)
        replay.receive(step.command, arm)
        if not replay.history:
            replay.history.append((now, replay.tracker.reference(now)))
    assert np.max(np.abs(replay.tracker.reference(now) - centre)[~grippers]) > 0.3  # it did move


def test_a_stop_is_sent_to_hold_however_late_it_arrives_and_a_chunk_keeps_its_states_stamp():
    """JTC refuses a stamped trajectory whose last point has passed: a stop
    held up in transit (a loaded machine, a busy network) would be refused
    and the chunk in force run on. Stops go stamped zero, on receipt."""
    from jtc import Jtc

    limits = JointLimits.from_lists(["a"], [-1.0], [1.0], [1.0])
    envelope = SafetyEnvelope(limits, PERIOD_S, lead_s=0.02)
    chunk = envelope.chunk(np.full((5, 1), 0.5), np.zeros(1), planned_s=10.0, issued_s=10.03)
    assert chunk.as_sent()[0] == 10.0 and np.array_equal(chunk.as_sent()[1], chunk.times_s)
    stop = envelope.hold(10.2)
    stamp, times = stop.as_sent()
    assert stamp == 0.0 and times == pytest.approx([PERIOD_S])
    controller = Jtc(["a"], [0.0])
    assert controller.command(*chunk.as_sent(), chunk.positions, chunk.velocities, now_s=10.03) == ""
    late = 10.2 + 0.5  # half a second in transit
    assert controller.command(stamp, times, stop.positions, stop.velocities, now_s=late) == ""
    assert "ends in the past" in Jtc(["a"], [0.0]).command(
        stop.stamp_s, stop.times_s, stop.positions, stop.velocities, now_s=late
    )
