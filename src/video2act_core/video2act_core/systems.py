"""Video2Act as plain Python: System 2 (camera clip -> tokens) and System 1
(tokens + joint state -> a chunk of joint targets), each around its model
with its pre- and post-processing.

The ROS nodes, the simulator loop, training and offline evaluation all go
through these classes, so every path runs the same model code.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from video2act_core.latents import Latents
from video2act_core.models.conditions import Instruction, encoded_instruction
from video2act_core.models.dit import ActionDiffusion, DiTConfig
from video2act_core.models.vdm_encoder import SpatioMotionEncoder, VDMEncoderConfig
from video2act_core.normalization import NormalizationStats
from video2act_core.processing import frames_to_tensor, resize_frames, views_to_tensor


class EncodeCancelled(Exception):
    """An encode stopped part-way because its `cancelled` turned true."""


class Cancellation:
    """Asks the current thread's `cancelled` (if any) before every block of
    the encoder's VAE and denoiser, so an encode stops within one block,
    whatever the model. One per encoder, however many System2 wrap it; the
    image and text encoders keep their models outside the module tree and
    run through."""

    def __init__(self, encoder: SpatioMotionEncoder):
        self._local = threading.local()
        for modules in encoder.modules():
            if isinstance(modules, nn.ModuleList):
                for block in modules:
                    if block is not None:  # HunyuanVideo's lists hold Nones
                        block.register_forward_pre_hook(self._stop_if_cancelled)

    @classmethod
    def of(cls, encoder: SpatioMotionEncoder) -> Cancellation:
        if "_cancellation" not in encoder.__dict__:
            encoder.__dict__["_cancellation"] = cls(encoder)
        return encoder.__dict__["_cancellation"]

    @contextmanager
    def asking(self, cancelled: Callable[[], bool] | None):
        self._local.cancelled = cancelled
        try:
            yield
        finally:
            self._local.cancelled = None

    def _stop_if_cancelled(self, _module: nn.Module, _inputs) -> None:
        cancelled = getattr(self._local, "cancelled", None)
        if cancelled is not None and cancelled():
            raise EncodeCancelled


class System2:
    """Camera clip -> spatial and motion tokens."""

    def __init__(self, encoder: SpatioMotionEncoder, model_id: str):
        self.encoder = encoder.eval()
        self.model_id = model_id
        self._cancellation = Cancellation.of(encoder)

    @property
    def config(self) -> VDMEncoderConfig:
        return self.encoder.config

    @property
    def needs_instruction(self) -> bool:
        """Its video model is conditioned on the task instruction (`encode`'s `instruction`)."""
        return self.encoder.backbone.conditions_on_instruction

    @torch.no_grad()
    def encode(
        self,
        frames: np.ndarray,
        views: list[np.ndarray] | None = None,
        instruction: str = "",
        cancelled: Callable[[], bool] | None = None,
    ) -> Latents:
        """(T, H, W, 3) uint8 RGB of any size: resized to the model's input
        as training resized them (`resize_frame`), then both streams; with
        image tokens, `views` holds each camera's (K, H, W, 3) frames, the
        video camera's first (`data.frames.CameraInputs`); without them a
        model whose image tokens come from the video camera alone takes
        them from the clip (`SpatioMotionEncoder.refine`). `instruction`:
        the task, for a video model conditioned on it ("": none).
        `cancelled` is asked before each block of the video model: once it says
        True the encode raises EncodeCancelled (a reset made its clip moot)."""
        with self._cancellation.asking(cancelled):
            return self._encode(frames, views, instruction)

    def _encode(self, frames: np.ndarray, views: list[np.ndarray] | None, instruction: str) -> Latents:
        size = (self.config.image_height, self.config.image_width)
        frames = resize_frames(frames, size)
        camera_frames = None
        if views is not None:
            if len(views) != self.config.view_cameras:
                raise ValueError(
                    f"this System 2 reads {self.config.view_cameras} camera(s) for its image tokens, got {len(views)}"
                )
            camera_frames = views_to_tensor([resize_frames(camera, size) for camera in views])
        self.encoder.backbone.set_instructions([instruction])
        tokens = self.encoder(frames_to_tensor(frames), camera_frames)
        return Latents(
            spatial=tokens.spatial[0].float().cpu().numpy(),
            motion=tokens.motion[0].float().cpu().numpy(),
            motion_energy=float(tokens.motion_energy[0]),
            boundary_map=tokens.boundary_map[0, 0].float().cpu().numpy(),
            motion_map=tokens.motion_map[0, 0].float().cpu().numpy(),
            views=None if tokens.views is None else tokens.views[0].float().cpu().numpy(),
        )


class System1:
    """Latest tokens + joint state -> a chunk of absolute joint targets."""

    def __init__(
        self,
        action: ActionDiffusion,
        stats: NormalizationStats,
        model_id: str,
        seed: int = 0,
        instructions: list[str] | None = None,
    ):
        self.action = action.eval()
        self.stats = stats
        self.model_id = model_id
        # The task instructions it was trained on (language-conditioned heads).
        self.trained_instructions = list(instructions or [])
        parameter = next(action.parameters())
        self._device, self._dtype = parameter.device, parameter.dtype
        self._generator = torch.Generator(device=self._device).manual_seed(seed)
        self._tokenized: tuple[str, Instruction] | None = None

    @property
    def needs_instruction(self) -> bool:
        return bool(self.config.language)

    @property
    def default_instruction(self) -> str:
        """The one instruction it was trained on, if only one ('' otherwise)."""
        return self.trained_instructions[0] if len(self.trained_instructions) == 1 else ""

    def _instruction(self, text: str) -> Instruction | None:
        if not self.needs_instruction:
            return None
        if self._tokenized is None or self._tokenized[0] != text:
            text_encoder = self.action.model.text_encoder
            ids, mask = text_encoder.tokenize([text])
            self._tokenized = (text, encoded_instruction(text_encoder, ids.to(self._device), mask.to(self._device)))
        return self._tokenized[1]

    @property
    def config(self) -> DiTConfig:
        return self.action.config

    @property
    def joint_names(self) -> list[str]:
        return self.stats.joint_names

    def act(
        self,
        latents: Latents,
        joint_positions: np.ndarray,
        num_inference_steps: int | None = None,
        prior: np.ndarray | None = None,
        prior_weights: np.ndarray | None = None,
        instruction: str = "",
    ) -> np.ndarray:
        """(H, J) absolute joint targets for the given state (in `joint_names`
        order); with a `prior` (H, J) of absolute targets and `prior_weights`
        (H,), inpainted toward it (`ActionDiffusion.sample`); `instruction`
        for a language-conditioned head."""
        state = self.stats.normalize_state(np.asarray(joint_positions, dtype=np.float64))
        as_tensor = lambda a: torch.as_tensor(np.asarray(a), dtype=self._dtype, device=self._device).unsqueeze(0)
        if prior is not None:
            prior_weights = torch.as_tensor(prior_weights, dtype=torch.float32, device=self._device).unsqueeze(0)
            prior = torch.as_tensor(
                self.stats.normalize_action(prior), dtype=torch.float32, device=self._device
            ).unsqueeze(0)
        if self.config.view_tokens and latents.views is None:
            raise ValueError("this System 1 reads image tokens per camera; the latents have none")
        normalised = self.action.sample(
            as_tensor(state),
            as_tensor(latents.spatial),
            as_tensor(latents.motion),
            generator=self._generator,
            num_inference_steps=num_inference_steps,
            prior=prior,
            prior_weights=prior_weights,
            instruction=self._instruction(instruction),
            views=as_tensor(latents.views) if self.config.view_tokens else None,
        )
        return self.stats.unnormalize_action(normalised[0].float().cpu().numpy().astype(np.float64))


class Video2ActPolicy:
    """Both systems, for loops that run them in one process (sim, evaluation)."""

    def __init__(self, system2: System2, system1: System1):
        if system2.model_id != system1.model_id:
            raise ValueError(f"System 2 '{system2.model_id}' and System 1 '{system1.model_id}' differ")
        self.system2 = system2
        self.system1 = system1
