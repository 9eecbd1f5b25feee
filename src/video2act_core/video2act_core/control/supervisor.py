"""What the policy publishes each tick: arming, System 1's plan and the
safety envelope together, free of ROS, so the node, the closed-loop
evaluation and the tests run the same decisions.

Arming follows the robot's operator: a robot starts disarmed and is armed
on request once its limits are known and its inputs fresh; a simulation
starts armed. Disarming always ends in a hold at the setpoint in force.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from video2act_core.control.envelope import JointCommand, SafetyEnvelope
from video2act_core.control.limits import JointLimits
from video2act_core.control.planner import ChunkPlanner, JointStateSample, LatentsSample, Mode, Plan


@dataclass
class Step:
    mode: Mode
    reason: str
    command: JointCommand | None  # what to publish this tick, if anything
    plan: Plan | None


class PolicySupervisor:
    def __init__(self, planner: ChunkPlanner, envelope: SafetyEnvelope, start_armed: bool):
        self.planner = planner
        self.envelope = envelope
        # A simulation arms by itself as soon as its limits are complete.
        self._arm_when_possible = start_armed
        self.armed = False
        self.last_mode: Mode | None = None

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
        if not self.armed:
            self.envelope.forget()
            self.armed, self.last_mode = True, None
        return ""

    def disarm(self, now_s: float) -> JointCommand | None:
        """Stop driving the arm: a hold at the setpoint in force, if any."""
        self._arm_when_possible = False
        if not self.armed:
            return None
        self.armed, self.last_mode = False, Mode.DISARMED
        command = self.envelope.hold(now_s)
        self.envelope.forget()
        return command

    def reset(self) -> None:
        """A new episode: nothing planned before it is executed after it, and
        its first chunk starts from its own measured state."""
        self.envelope.forget()
        self.last_mode = None

    def tick(self, latents: LatentsSample | None, state: JointStateSample | None, now_s: float,
             publish_time: Callable[[Plan], float] | None = None) -> Step:
        """One System 1 step at `now_s`. `publish_time` tells when the chunk
        of a plan will be sent, after inference: points due by then are
        dropped, and the rest is bounded from where the setpoint is then,
        not where it was when planning began."""
        limits_problem = self.envelope.limits.missing()
        if not self.armed and self._arm_when_possible and not limits_problem:
            self.armed = True
        if not self.armed:
            reason = limits_problem or "disarmed: call the ~/arm service (std_srvs/SetBool) to drive the arm"
            return self._step(Mode.DISARMED, reason, None, None)

        untrusted = self.envelope.state_problem(state.positions) if state is not None else ""
        plan = None if untrusted else self.planner.plan(latents, state, now_s)
        mode, reason = (Mode.HOLD, untrusted) if plan is None else (plan.mode, plan.reason)
        issued = now_s
        if mode == Mode.ACTIVE:
            issued = publish_time(plan) if publish_time is not None else now_s
            command = self.envelope.chunk(plan.positions, state.positions, state.stamp_s, issued)
            if command is not None:
                reason = f"safety envelope limited {command.limited} values" if command.limited else ""
                return self._step(Mode.ACTIVE, reason, command, plan)
            mode, reason = Mode.HOLD, f"every point of the chunk was due before it was sent ({issued - now_s:.3f} s)"
        # Stop once when leaving ACTIVE, rather than let the controller finish
        # a chunk sampled from inputs we no longer trust.
        command = self.envelope.hold(issued) if self.last_mode == Mode.ACTIVE else None
        return self._step(mode, reason, command, plan)

    def _step(self, mode: Mode, reason: str, command: JointCommand | None, plan: Plan | None) -> Step:
        self.last_mode = mode
        return Step(mode, reason, command, plan)
