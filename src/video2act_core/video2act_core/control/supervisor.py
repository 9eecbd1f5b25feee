"""What the policy publishes each tick: arming, System 1's plan and the
safety envelope together, free of ROS, so the node, the closed-loop
evaluation and the tests run the same decisions.

Arming follows the robot's operator: a robot starts disarmed and is armed
on request once its limits are known and its inputs fresh; a simulation
starts armed. Disarming always ends in a hold at the setpoint in force.

An arm that does not follow its setpoint (`FollowWatchdog`) gets one stop
at its measured pose, and then the policy holds, saying why, until it is
armed again or a new episode starts: whatever keeps the controller from
executing needs a person, and chunks sent meanwhile would only pile up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from video2act_core.control.envelope import JointCommand, SafetyEnvelope
from video2act_core.control.execution import ExecutionStrategy
from video2act_core.control.limits import JointLimits
from video2act_core.control.planner import ChunkPlanner, JointStateSample, LatentsSample, Mode, Plan
from video2act_core.control.watchdog import FollowWatchdog
from video2act_core.params import PolicyParams

# How finely the watchdog sees the setpoints between ticks.
WATCH_STEP_S = 0.01


@dataclass
class Step:
    mode: Mode
    reason: str
    command: JointCommand | None  # what to publish this tick, if anything
    plan: Plan | None


class PolicySupervisor:
    def __init__(
        self,
        planner: ChunkPlanner,
        envelope: SafetyEnvelope,
        start_armed: bool,
        execution: ExecutionStrategy | None = None,
        watchdog: FollowWatchdog | None = None,
    ):
        self.planner = planner
        self.envelope = envelope
        self.execution = execution or ExecutionStrategy("replace", envelope.period_s, planner.system1.config.horizon)
        self.watchdog = watchdog
        # A simulation arms by itself as soon as its limits are complete.
        self._arm_when_possible = start_armed
        self.armed = False
        self.last_mode: Mode | None = None
        self.fault = ""  # why the arm was stopped for not following, until armed again or reset

    def set_limits(self, limits: JointLimits) -> None:
        self.envelope.limits = limits

    def arm(self, latents: LatentsSample | None, state: JointStateSample | None, now_s: float) -> str:
        """Arm if the limits are complete and the inputs fresh and trusted;
        returns why not, or ''. The first chunk starts from the measured state."""
        problem = self.envelope.limits.missing() or self.planner.input_problem(latents, state, now_s)
        if not problem:
            problem = self.envelope.state_problem(state.positions)
        if problem:
            return problem
        if not self.armed or self.fault:
            self._forget()
            self.armed, self.last_mode = True, None
        return ""

    def disarm(self, now_s: float) -> JointCommand | None:
        """Stop driving the arm: a hold at the setpoint in force, if any."""
        self._arm_when_possible = False
        if not self.armed:
            return None
        self.armed, self.last_mode = False, Mode.DISARMED
        command = self.envelope.hold(now_s)
        self._forget()
        return command

    def reset(self) -> None:
        """A new episode: nothing planned before it is executed after it, and
        its first chunk starts from its own measured state."""
        self._forget()
        self.last_mode = None

    def _forget(self) -> None:
        self.envelope.forget()
        self.execution.reset()
        self.fault = ""
        if self.watchdog is not None:
            self.watchdog.reset()

    def tick(
        self,
        latents: LatentsSample | None,
        state: JointStateSample | None,
        now_s: float,
        publish_time: Callable[[Plan], float] | None = None,
    ) -> Step:
        """One System 1 step at `now_s`. `publish_time` tells when the chunk
        of a plan will be sent, after inference: points due by then are
        dropped, and the rest is bounded from where the setpoint is then,
        not where it was when planning began."""
        self._note_setpoints(now_s)
        return self._watch(self._decide(latents, state, now_s, publish_time), now_s)

    def _decide(
        self,
        latents: LatentsSample | None,
        state: JointStateSample | None,
        now_s: float,
        publish_time: Callable[[Plan], float] | None,
    ) -> Step:
        limits_problem = self.envelope.limits.missing()
        if not self.armed and self._arm_when_possible and not limits_problem:
            self.armed = True
        if not self.armed:
            reason = limits_problem or "disarmed: call the ~/arm service (std_srvs/SetBool) to drive the arm"
            return self._step(Mode.DISARMED, reason, None, None)

        if self.fault:
            return self._step(Mode.HOLD, self.fault, None, None)
        untrusted = self.envelope.state_problem(state.positions) if state is not None else ""
        if state is not None and not untrusted and self.watchdog is not None:
            fault = self.watchdog.check(state.positions, state.stamp_s, self.envelope.limits.joint_names)
            if fault:
                command = self.envelope.stop_at(state.positions, state.stamp_s, now_s)
                self._forget()
                self.fault = fault
                return self._step(Mode.HOLD, fault, command, None)
        plan = None
        if not untrusted:
            # A chunk's points are timed from the state it is planned from.
            prior = (
                self.execution.prior(*self.envelope.command_in_force(), state.stamp_s) if state is not None else None
            )
            plan = self.planner.plan(latents, state, now_s, prior)
        mode, reason = (Mode.HOLD, untrusted) if plan is None else (plan.mode, plan.reason)
        issued = now_s
        if mode == Mode.ACTIVE:
            issued = publish_time(plan) if publish_time is not None else now_s
            self.execution.latency.record(issued - state.stamp_s)
            targets = self.execution.combine(plan.positions, state.stamp_s)
            command = self.envelope.chunk(targets, state.positions, state.stamp_s, issued)
            if command is not None:
                reason = f"safety envelope limited {command.limited} values" if command.limited else ""
                return self._step(Mode.ACTIVE, reason, command, plan)
            mode, reason = Mode.HOLD, f"every point of the chunk was due before it was sent ({issued - now_s:.3f} s)"
        # Stop once when leaving ACTIVE, rather than let the controller finish
        # a chunk sampled from inputs we no longer trust.
        command = self.envelope.hold(issued) if self.last_mode == Mode.ACTIVE else None
        self.execution.reset()
        return self._step(mode, reason, command, plan)

    def _step(self, mode: Mode, reason: str, command: JointCommand | None, plan: Plan | None) -> Step:
        self.last_mode = mode
        return Step(mode, reason, command, plan)

    def _note_setpoints(self, until_s: float) -> None:
        """The setpoints of the command in force from the last noted one up
        to `until_s` (over the watchdog's window at most), every
        WATCH_STEP_S: no command was issued since the last tick, so its
        spline covers them, however far apart the ticks came."""
        if self.watchdog is None or self.fault or self.envelope.setpoint(until_s) is None:
            return
        start = max(self.watchdog.last_noted_s() + WATCH_STEP_S, until_s - self.watchdog.lag_s - WATCH_STEP_S)
        for t in np.arange(start, until_s, WATCH_STEP_S):
            self.watchdog.record(t, self.envelope.setpoint(t))

    def _watch(self, step: Step, now_s: float) -> Step:
        """Note the setpoint in force after this tick for the watchdog."""
        if self.watchdog is not None and not self.fault:
            at_s = step.command.issued_s if step.command is not None else now_s
            setpoint = self.envelope.setpoint(at_s)
            if setpoint is not None:
                self.watchdog.record(at_s, setpoint)
        return step


def build_supervisor(system1, params: PolicyParams, limits: JointLimits, start_armed: bool) -> PolicySupervisor:
    """Planner, envelope, execution strategy and watchdog as the policy
    parameters set them: the node and the closed-loop evaluation run the same.

    Raises:
        ValueError: the head is conditioned on a control rate other than
            the one its chunks are played at (an RDT head's control_hz).
    """
    rdt = getattr(system1.config, "head", "dit") == "rdt"
    conditioned_hz = system1.config.control_hz if rdt else 0
    if conditioned_hz and abs(conditioned_hz * params.action_period_s - 1.0) > 0.01:
        raise ValueError(
            f"the checkpoint's RDT head is told its chunks play at {conditioned_hz} Hz (system1.control_hz), "
            f"action_period_s {params.action_period_s} s plays them at {1.0 / params.action_period_s:.4g} Hz"
        )
    planner = ChunkPlanner(
        system1,
        params.action_period_s,
        params.max_latents_age_s,
        params.max_joint_state_age_s,
        params.num_inference_steps,
        params.max_stamp_lead_s,
    )
    grippers = np.isin(params.joint_names, params.gripper_joint_names)
    envelope = SafetyEnvelope(
        limits,
        params.action_period_s,
        params.state_limit_margin,
        params.command_lead_s,
        params.follow_lag_s,
        unfollowed=grippers,
    )
    execution = ExecutionStrategy(
        params.execution_strategy,
        params.action_period_s,
        system1.config.horizon,
        params.command_lead_s,
        params.ensemble_weight_decay,
    )
    watchdog = FollowWatchdog(params.follow_lag_s, params.follow_tolerance, params.follow_timeout_s, unwatched=grippers)
    return PolicySupervisor(planner, envelope, start_armed, execution, watchdog)
