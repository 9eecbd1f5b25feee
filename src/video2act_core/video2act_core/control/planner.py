"""System 1's decision each tick: sample a chunk of joint targets from the
newest latents and joint state, or say why the arm must hold. Nothing here
raises on bad input: a robot loop must keep running and hold."""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import IntEnum
from typing import TYPE_CHECKING

import numpy as np

from video2act_core.control.execution import ChunkPrior
from video2act_core.latents import Latents

if TYPE_CHECKING:  # the planner drives a System 1 it is given; control itself needs no torch
    from video2act_core.systems import System1


class Mode(IntEnum):
    # Values match video2act_msgs/ActionChunk's MODE_* constants.
    ACTIVE = 0
    HOLD = 1
    REJECTED = 2
    DISARMED = 3


@dataclass
class JointStateSample:
    positions: np.ndarray  # (J,) in the policy's joint order
    stamp_s: float  # the message's stamp (its receipt time when it had none)
    received_s: float | None = None  # node time of receipt

    def age_s(self, now_s: float) -> float:
        """Age by the older of stamp and receipt: a stamp that runs ahead of
        our clock cannot make a state look fresher than its arrival."""
        received = self.stamp_s if self.received_s is None else self.received_s
        return now_s - min(self.stamp_s, received)


@dataclass
class LatentsSample:
    latents: Latents
    stamp_ns: int  # capture time of the newest frame used
    sequence: int
    model_id: str


@dataclass
class Plan:
    mode: Mode
    reason: str
    positions: np.ndarray | None  # (H, J) requested targets when ACTIVE, before the envelope
    latents: LatentsSample | None
    latents_age_s: float
    inference_s: float
    frozen_steps: int = 0  # leading steps inpainted to the command in force (real-time chunking)


class ChunkPlanner:
    def __init__(
        self,
        system1: System1,
        action_period_s: float,
        max_latents_age_s: float,
        max_joint_state_age_s: float,
        num_inference_steps: int | None = None,
        max_stamp_lead_s: float = 0.1,
    ):
        trained = system1.config.num_train_timesteps
        if num_inference_steps is not None and not 1 <= num_inference_steps <= trained:
            raise ValueError(
                f"num_inference_steps {num_inference_steps} must lie in [1, {trained}], the "
                "checkpoint's training timesteps"
            )
        self.system1 = system1
        self.action_period_s = action_period_s
        self.max_latents_age_s = max_latents_age_s
        self.max_joint_state_age_s = max_joint_state_age_s
        self.num_inference_steps = num_inference_steps
        self.max_stamp_lead_s = max_stamp_lead_s
        config = system1.config
        self._token_width = config.context_dim
        # Image tokens may come as wide as System 2's features (an RDT head's
        # own adaptor reads them), and an RDT head reads a fixed number.
        self._image_width = config.view_dim or config.context_dim
        self._image_count = int(np.prod(config.view_layout)) if config.view_layout else None
        # For a language-conditioned head: the task, until a node sets another.
        self.instruction = system1.default_instruction

    def check_latents(self, sample: LatentsSample) -> str:
        """Why these latents cannot be used, or '' when they can."""
        if sample.model_id != self.system1.model_id:
            return f"latents from model '{sample.model_id}', policy runs '{self.system1.model_id}'"
        streams = [
            ("spatial", sample.latents.spatial, None, self._token_width),
            ("motion", sample.latents.motion, None, self._token_width),
        ]
        if self.system1.config.view_tokens:
            if sample.latents.views is None:
                return "latents carry no image tokens; this checkpoint reads them per camera"
            streams.append(("image", sample.latents.views, self._image_count, self._image_width))
        for name, tokens, count, width in streams:
            wrong_count = tokens.shape[0] == 0 or (count is not None and tokens.shape[0] != count)
            if tokens.ndim != 2 or tokens.shape[1] != width or wrong_count:
                return f"{name} tokens shaped {tokens.shape}, expected ({count or 'N'}, {width})"
            if not np.all(np.isfinite(tokens)):
                return f"{name} tokens contain NaN or Inf"
        return ""

    def input_problem(self, latents: LatentsSample | None, state: JointStateSample | None, now_s: float) -> str:
        """Why these inputs cannot be acted on now, or '' when they can."""
        if state is None:
            return "no joint state received since start-up or the last reset"
        if state.stamp_s - now_s > self.max_stamp_lead_s:
            return f"joint state stamped {state.stamp_s - now_s:.2f} s in the future"
        age = state.age_s(now_s)
        if age > self.max_joint_state_age_s:
            return f"joint state is {age:.2f} s old (max {self.max_joint_state_age_s})"
        if self.system1.needs_instruction and not self.instruction:
            known = self.system1.trained_instructions
            return (
                f"no task instruction (the checkpoint knows {len(known)}: {known[:3]}); "
                "publish one (std_msgs/String, transient local) on instruction_topic"
            )
        if latents is None:
            return "no latents from perception since start-up or the last reset"
        age = now_s - latents.stamp_ns * 1e-9
        if age < -self.max_stamp_lead_s:
            return f"latents stamped {-age:.2f} s in the future"
        if age > self.max_latents_age_s:
            return f"latents are {age:.2f} s old (max {self.max_latents_age_s})"
        return self.check_latents(latents)

    def plan(
        self,
        latents: LatentsSample | None,
        state: JointStateSample | None,
        now_s: float,
        prior: ChunkPrior | None = None,
    ) -> Plan:
        """A chunk for `now_s`, inpainted toward `prior` when one is given."""
        age = float("nan") if latents is None else now_s - latents.stamp_ns * 1e-9
        problem = self.input_problem(latents, state, now_s)
        if problem:
            return Plan(Mode.HOLD, problem, None, latents, age, 0.0)
        started = time.perf_counter()
        chunk = self.system1.act(
            latents.latents,
            state.positions,
            self.num_inference_steps,
            prior=None if prior is None else prior.positions,
            prior_weights=None if prior is None else prior.weights,
            instruction=self.instruction,
        )
        inference = time.perf_counter() - started
        if not np.all(np.isfinite(chunk)):
            return Plan(Mode.REJECTED, "action head produced NaN or Inf", None, latents, age, inference)
        return Plan(Mode.ACTIVE, "", chunk, latents, age, inference, prior.frozen_steps if prior is not None else 0)
