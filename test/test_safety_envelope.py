"""The safety envelope as properties over random and adversarial inputs:
no command is ever non-finite, outside the position limits, or a step above
the velocity limit from the command in force, holds and stops included."""

import numpy as np
import pytest

from conftest import JOINTS, hand_made_latents
from jtc import Jtc
from video2act_core.checkpoint import load_system1
from video2act_core.control import (
    ChunkPlanner,
    JointLimits,
    JointStateSample,
    LatentsSample,
    Mode,
    PolicySupervisor,
    SafetyEnvelope,
    envelope_violations,
    point_velocities,
)

PERIOD_S = 0.1
ADVERSARIAL = [np.nan, np.inf, -np.inf, 1e300, -1e300, 0.0]


class ControllerModel:
    """joint_trajectory_controller as the envelope's judge (test/jtc.py,
    written apart from the envelope's own model): each command replaces the
    last on receipt, interpolated from the setpoint then."""

    def __init__(self, limits: JointLimits, period_s: float):
        self.limits, self.period_s = limits, period_s
        self.tracker: Jtc | None = None
        self.checked = 0
        self.last_s: float | None = None
        self.peak_speed_ratio = 0.0

    def advance(self, now_s: float) -> None:
        """The setpoint between commands, every 2 ms: the controller's
        spline never leaves the position limits."""
        if self.tracker is not None and self.last_s is not None:
            for t in np.arange(self.last_s, now_s, 0.002):
                position, velocity = self.tracker.sample(t)
                assert np.all(position >= self.limits.lower - 1e-9) and np.all(position <= self.limits.upper + 1e-9), (
                    t,
                    position,
                )
                self.peak_speed_ratio = max(
                    self.peak_speed_ratio, float(np.max(np.abs(velocity) / self.limits.max_velocity))
                )
        self.last_s = now_s

    def receive(self, command, now_s: float, measured: np.ndarray) -> None:
        """With no command in force the controller starts from the arm's
        measured position (clamped to the limits, as the envelope trusts it)."""
        self.advance(now_s)
        if self.tracker is None:
            self.tracker = Jtc(list(self.limits.joint_names), np.clip(measured, self.limits.lower, self.limits.upper))
        previous = self.tracker.position(now_s)
        problems = envelope_violations(command, previous, self.limits)
        assert not problems, (problems, previous, command.positions)
        self.checked += 1
        assert (
            self.tracker.command(command.stamp_s, command.times_s, command.positions, command.velocities, now_s) == ""
        )

    def forget(self) -> None:
        self.tracker = None
        self.last_s = None


def random_limits(rng, joints=6) -> JointLimits:
    lower = rng.uniform(-3, 0, joints)
    return JointLimits.from_lists(
        JOINTS[:joints],
        lower.tolist(),
        (lower + rng.uniform(0.1, 4, joints)).tolist(),
        rng.uniform(0.1, 5, joints).tolist(),
    )


def random_targets(rng, limits: JointLimits, horizon: int) -> np.ndarray:
    centre = (limits.lower + limits.upper) / 2
    targets = centre + rng.normal(0, 3, (horizon, len(centre))) * (limits.upper - limits.lower)
    if rng.random() < 0.3:  # an action head gone wrong
        mask = rng.random(targets.shape) < 0.2
        targets[mask] = rng.choice(ADVERSARIAL, mask.sum())
    return targets


def test_every_command_stays_inside_the_envelope_whatever_is_asked():
    rng = np.random.default_rng(0)
    checked, peak = 0, 0.0
    for _ in range(300):
        limits = random_limits(rng)
        envelope = SafetyEnvelope(limits, PERIOD_S)
        controller = ControllerModel(limits, PERIOD_S)
        now = 100.0  # stamps are positive: a zero stamp means "on receipt"
        for _ in range(30):
            now += rng.choice([0.0, 0.01, PERIOD_S, 0.35, 2.0])
            action = rng.random()
            state = rng.uniform(limits.lower, limits.upper)
            if action < 0.7:
                # Planned a while ago: inference and transport take their time.
                planned = now - rng.choice([0.0, 0.03, 0.25, 5.0])
                command = envelope.chunk(random_targets(rng, limits, int(rng.integers(1, 20))), state, planned, now)
            elif action < 0.9:
                command = envelope.hold(now)
            else:
                envelope.forget()
                controller.forget()
                continue
            if command is not None:
                controller.receive(command, now, state)
        controller.advance(now + 3.0)
        checked += controller.checked
        peak = max(peak, controller.peak_speed_ratio)
    # Between points the spline may run faster than a segment's mean speed
    # (up to 1.5x where a chunk starts or stops within one period).
    print(f"commands checked against the envelope: {checked}; peak setpoint speed {peak:.2f}x the limit")
    assert checked > 4000
    assert 1.0 < peak < 2.2  # the take-over speed SafetyEnvelope.spline_safe_limits is sized for


def test_a_chunk_starts_from_the_setpoint_in_force_not_the_measured_state():
    limits = JointLimits.from_lists(JOINTS[:1], [-1.0], [1.0], [1.0])
    # An arm allowed to lag 0.3 s, so the reach bound leaves these points alone.
    envelope = SafetyEnvelope(limits, PERIOD_S, lead_s=0.0, follow_lag_s=0.3)
    envelope.chunk(np.full((5, 1), 1.0), np.zeros(1), 0.0, 0.0)  # heading for 0.5 at 0.1 per step
    # The arm lags at 0.0; the setpoint is at 0.2 after 0.2 s (a linear ramp).
    command = envelope.chunk(np.full((3, 1), 1.0), np.zeros(1), 0.2, 0.2)
    np.testing.assert_allclose(command.origin, [0.2], atol=1e-9)
    np.testing.assert_allclose(command.positions[:, 0], [0.3, 0.4, 0.5])


def test_points_due_while_the_model_ran_are_dropped_and_the_rest_keep_their_times():
    limits = JointLimits.from_lists(JOINTS[:1], [-5.0], [5.0], [10.0])
    envelope = SafetyEnvelope(limits, PERIOD_S, lead_s=0.02)
    targets = np.arange(1.0, 6.0)[:, None] * 0.1  # for 10.1, 10.2, ... 10.5
    command = envelope.chunk(targets, np.zeros(1), planned_s=10.0, issued_s=10.19)
    np.testing.assert_allclose(command.times_s, [0.3, 0.4, 0.5])  # 10.1 and 10.2 (< 10.21) were due
    np.testing.assert_allclose(command.positions[:, 0], [0.3, 0.4, 0.5])
    assert command.stamp_s == 10.0 and command.issued_s == 10.19
    np.testing.assert_allclose(command.segment_durations(), [0.11, 0.1, 0.1])
    assert envelope.chunk(targets, np.zeros(1), planned_s=10.0, issued_s=10.6) is None


def test_holds_stop_at_the_setpoint_and_never_at_a_measured_state():
    limits = JointLimits.from_lists(JOINTS[:1], [-1.0], [1.0], [1.0])
    envelope = SafetyEnvelope(limits, PERIOD_S, lead_s=0.0)
    assert envelope.hold(0.0) is None  # nothing in force: nothing to stop
    envelope.chunk(np.full((5, 1), 1.0), np.zeros(1), 0.0, 0.0)
    hold = envelope.hold(0.15)
    assert hold.stamp_s == 0.0 and hold.times_s[0] == pytest.approx(0.25)  # it belongs to the command it stops
    np.testing.assert_allclose(hold.positions, [[0.15]], atol=0.02)
    np.testing.assert_allclose(hold.velocities, [[0.0]])
    assert hold.hold
    assert "outside the limits" in envelope.state_problem(np.array([1e300]))
    assert "not finite" in envelope.state_problem(np.array([np.nan]))
    assert envelope.state_problem(np.array([1.04])) == ""  # within the margin an encoder may read


def test_point_velocities_follow_the_positions_and_end_at_rest():
    positions = np.array([[0.1], [0.2], [0.3], [0.3], [0.2]])
    velocities = point_velocities(np.zeros(1), positions, np.full(5, PERIOD_S))
    np.testing.assert_allclose(velocities[:, 0], [1.0, 1.0, 0.0, 0.0, 0.0])


@pytest.fixture(scope="module")
def system1(tiny_checkpoint):
    return load_system1(tiny_checkpoint, device="cpu")


def make_latents(system1, stamp_s: float, value: float = 0.0) -> LatentsSample:
    width = system1.config.context_dim
    tokens = hand_made_latents(system1, np.full((16, width), value, np.float32), np.zeros((16, width), np.float32))
    return LatentsSample(tokens, int(stamp_s * 1e9), 0, system1.model_id)


def test_the_supervisor_under_adversarial_inputs_publishes_only_commands_inside_the_envelope(system1):
    """Real System 1 (tiny checkpoint); states, stamps and latents from an
    adversary; arming, disarming and resets in between."""
    rng = np.random.default_rng(1)
    limits = JointLimits.from_lists(
        JOINTS, [-2.0, -1.8, -0.2, -1.7, -2.8, 0.0], [2.0, 1.8, 2.8, 1.7, 2.8, 1.0], [2.0, 2.0, 2.0, 2.5, 3.0, 3.0]
    )
    planner = ChunkPlanner(system1, PERIOD_S, max_latents_age_s=1.0, max_joint_state_age_s=0.3, num_inference_steps=2)
    supervisor = PolicySupervisor(planner, SafetyEnvelope(limits, PERIOD_S), start_armed=True)
    controller = ControllerModel(limits, PERIOD_S)
    modes, now = {}, 10.0
    for tick in range(400):
        now += PERIOD_S
        kind = rng.random()
        positions = rng.uniform(limits.lower, limits.upper)
        stamp = now - 0.01
        if kind < 0.08:
            positions[rng.integers(6)] = rng.choice(ADVERSARIAL[:5])
        elif kind < 0.12:
            stamp = now + rng.choice([0.5, 6.0])
        elif kind < 0.16:
            stamp = now - 5.0
        latents = make_latents(system1, now - rng.choice([0.05, 0.5, 3.0, -2.0]), value=rng.choice([0.0, 1e6, np.nan]))
        step = supervisor.tick(latents, JointStateSample(positions, stamp, now), now)
        modes[step.mode] = modes.get(step.mode, 0) + 1
        if step.command is not None:
            controller.receive(step.command, now, positions)
        if tick % 97 == 50:
            command = supervisor.disarm(now)  # mid-motion: ends in a hold at the setpoint
            if command is not None:
                assert command.hold
                controller.receive(command, now, positions)
            controller.forget()
            assert supervisor.tick(latents, JointStateSample(positions, stamp, now), now).command is None
            fresh = make_latents(system1, now)
            assert supervisor.arm(fresh, JointStateSample(np.zeros(6), now, now), now) == ""
        if tick % 61 == 30:
            supervisor.reset()
            controller.forget()
    print(f"modes: { {m.name: n for m, n in modes.items()} }, commands checked: {controller.checked}")
    assert modes.get(Mode.ACTIVE, 0) > 50 and modes.get(Mode.HOLD, 0) > 50
    assert controller.checked > 50


def test_arming_needs_limits_and_fresh_trusted_inputs(system1):
    planner = ChunkPlanner(system1, PERIOD_S, max_latents_age_s=1.0, max_joint_state_age_s=0.3)
    state = JointStateSample(np.zeros(6), 10.0, 10.0)
    latents = make_latents(system1, 10.0)
    no_limits = PolicySupervisor(planner, SafetyEnvelope(JointLimits.unknown(JOINTS), PERIOD_S), start_armed=True)
    assert "no position limits" in no_limits.arm(latents, state, 10.1)
    step = no_limits.tick(latents, state, 10.1)
    assert step.mode == Mode.DISARMED and "no position limits" in step.reason and step.command is None

    limits = JointLimits.from_lists(JOINTS, [-1.0] * 6, [1.0] * 6, [1.0] * 6)
    robot = PolicySupervisor(planner, SafetyEnvelope(limits, PERIOD_S), start_armed=False)
    assert robot.tick(latents, state, 10.1).mode == Mode.DISARMED  # a robot starts disarmed
    assert "old" in robot.arm(latents, state, 12.0)
    assert "outside the limits" in robot.arm(latents, JointStateSample(np.full(6, 5.0), 10.0, 10.0), 10.1)
    assert robot.arm(latents, state, 10.1) == ""
    assert robot.tick(latents, state, 10.1).mode == Mode.ACTIVE
    hold = robot.disarm(10.2)
    assert hold is not None and hold.hold
    after = robot.tick(latents, state, 10.3)
    assert after.mode == Mode.DISARMED and after.command is None
