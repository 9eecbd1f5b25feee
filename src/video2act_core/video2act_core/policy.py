"""Video2Act as plain Python: pre-processing, both systems, post-processing.

The ROS nodes, the simulator loop, training and offline evaluation all go
through these classes, so every path runs the same model code.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from video2act_core.data.images import resize_frame
from video2act_core.models.dit import ActionDiffusion, DiTConfig, Instruction
from video2act_core.models.vdm_encoder import SpatioMotionEncoder, VDMEncoderConfig
from video2act_core.normalization import NormalizationStats


# Oldest Linux driver branch each CUDA major runs on (NVIDIA's CUDA
# compatibility guide, "minor version compatibility" table).
MIN_DRIVER_FOR_CUDA = {"11": 450, "12": 525, "13": 580}
NVIDIA_DRIVER_VERSION_FILE = Path("/proc/driver/nvidia/version")
NVIDIA_DEVICE_FILE = Path("/dev/nvidia0")


class CudaUnusableWarning(RuntimeWarning):
    """`device: auto` on a machine with an NVIDIA GPU that torch cannot use."""


def nvidia_gpu() -> str | None:
    """The NVIDIA GPU this machine shows, in words (kernel driver version or
    device node), or None without one. In a container started without
    `--gpus`, the host's /proc/driver/nvidia still shows."""
    try:
        line = NVIDIA_DRIVER_VERSION_FILE.read_text().splitlines()[0]
    except (OSError, IndexError):
        line = None
    if line is not None:
        version = re.search(r"Kernel Module\s+(?:for \S+\s+)?(\d+(?:\.\d+)+)", line)
        return f"NVIDIA driver {version.group(1)}" if version else "NVIDIA driver loaded"
    return f"{NVIDIA_DEVICE_FILE} present" if NVIDIA_DEVICE_FILE.exists() else None


def _one_line(text: str) -> str:
    text = re.sub(r"\s*\(Triggered internally at [^)]*\)\.?", "", text)
    return " ".join(text.split())


def cuda_unusable_reason() -> str | None:
    """None when torch can use CUDA; else why not, in one line: torch's own
    warning or error ("The NVIDIA driver on your system is too old ..."),
    the build of torch, and the driver it needs."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        available = torch.cuda.is_available()
    if available:
        return None
    reasons = [_one_line(str(w.message)) for w in caught if "cuda" in str(w.message).lower()]
    built_for = torch.version.cuda
    if built_for is None:
        reasons.append(f"torch {torch.__version__} is a CPU-only build")
    else:
        if not reasons:  # torch warns once per process; its init error says it again
            try:
                torch.cuda.init()
            except Exception as error:  # noqa: BLE001 - any failure is the reason wanted
                reasons.append(_one_line(str(error)))
        needs = MIN_DRIVER_FOR_CUDA.get(built_for.split(".")[0])
        driver = f"; NVIDIA Linux driver >= {needs} needed" if needs else ""
        reasons.append(f"torch {torch.__version__} is built for CUDA {built_for}{driver}")
    gpu = nvidia_gpu()
    reasons.append(f"this machine: {gpu or 'no NVIDIA driver or /dev/nvidia0 found'}")
    return "; ".join(reasons)


def resolve_device(name: str, warn: Callable[[str], None] | None = None) -> torch.device:
    """'auto' picks CUDA when torch can use it, else the CPU; a CUDA request
    that torch cannot serve is an error that says why, in one line.

    'auto' on a machine with an NVIDIA GPU that torch cannot use (a driver
    too old for torch's CUDA build, a CPU-only torch, a container without
    --gpus) still runs on the CPU, many times slower: `warn` (e.g. a ROS
    node's logger.warning) gets a loud line about it; without one, a
    CudaUnusableWarning is issued."""
    if name == "auto":
        reason = cuda_unusable_reason()
        if reason is None:
            return torch.device("cuda")
        gpu = nvidia_gpu()
        if gpu is not None:
            message = (f"CUDA UNUSABLE: device 'auto' falls back to the CPU although this machine has an NVIDIA GPU "
                       f"({gpu}): {reason}. Set device: cpu to run on the CPU on purpose.")
            if warn is None:
                warnings.warn(message, CudaUnusableWarning, stacklevel=2)
            else:
                warn(message)
        return torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda":
        reason = cuda_unusable_reason()
        if reason is not None:
            raise RuntimeError(f"device '{name}' requested but CUDA is not available: {reason}")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise RuntimeError(f"device '{name}' requested but torch sees {count} CUDA device(s)")
    return device


def limit_cpu_threads(threads: int) -> None:
    """Cap torch's intra-op CPU threads (0 keeps torch's default of one per
    core). Two model processes on one machine each default to every core,
    and then starve each other's sensor callbacks."""
    if threads < 0:
        raise ValueError(f"torch_threads must be >= 0, got {threads}")
    if threads:
        torch.set_num_threads(threads)


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """Half precision only on CUDA: on the CPU it is slower, not faster."""
    dtypes = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
    if name not in dtypes:
        raise ValueError(f"dtype must be one of {sorted(dtypes)}, got '{name}'")
    return dtypes[name] if device.type == "cuda" else torch.float32


@dataclass
class Latents:
    """One System 2 update, as numpy, ready for a message or System 1."""

    spatial: np.ndarray  # (N_spatial, token_dim) float32
    motion: np.ndarray  # (N_motion, token_dim) float32
    motion_energy: float
    # What System 2 saw, for display (not sent to System 1): (h, w) maps.
    boundary_map: np.ndarray | None = None
    motion_map: np.ndarray | None = None
    # Image tokens per camera and history frame (N_views, token_dim), when
    # the checkpoint has them.
    views: np.ndarray | None = None


def frames_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """(T, H, W, 3) uint8 RGB -> (1, T, 3, H, W) float in [0, 1]."""
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected (T, H, W, 3) uint8 RGB frames, got {frames.shape} {frames.dtype}")
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).unsqueeze(0).float() / 255.0


def views_to_tensor(views: list[np.ndarray]) -> torch.Tensor:
    """Each camera's (K, H, W, 3) uint8 RGB frames -> (1, V, K, 3, H, W) in [0, 1]."""
    return torch.cat([frames_to_tensor(camera) for camera in views]).unsqueeze(0)


class System2:
    """Camera clip -> spatial and motion tokens."""

    def __init__(self, encoder: SpatioMotionEncoder, model_id: str):
        self.encoder = encoder.eval()
        self.model_id = model_id

    @property
    def config(self) -> VDMEncoderConfig:
        return self.encoder.config

    @torch.no_grad()
    def encode(self, frames: np.ndarray, views: list[np.ndarray] | None = None) -> Latents:
        """(T, H, W, 3) uint8 RGB of any size: resized to the model's input
        as training resized them (`resize_frame`), then both streams; with
        image tokens, `views` holds each camera's (K, H, W, 3) frames, the
        video camera's first (`data.frames.CameraInputs`); without them a
        model whose image tokens come from the video camera alone takes
        them from the clip (`SpatioMotionEncoder.refine`)."""
        size = (self.config.image_height, self.config.image_width)
        frames = np.stack([resize_frame(frame, size) for frame in frames])
        camera_frames = None
        if views is not None:
            if len(views) != self.config.view_cameras:
                raise ValueError(f"this System 2 reads {self.config.view_cameras} camera(s) for its image tokens, "
                                 f"got {len(views)}")
            camera_frames = views_to_tensor([np.stack([resize_frame(f, size) for f in camera]) for camera in views])
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

    def __init__(self, action: ActionDiffusion, stats: NormalizationStats, model_id: str, seed: int = 0,
                 instructions: list[str] | None = None):
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
            ids, mask = self.action.model.text_encoder.tokenize([text])
            self._tokenized = (text, Instruction(ids.to(self._device), mask.to(self._device)))
        return self._tokenized[1]

    @property
    def config(self) -> DiTConfig:
        return self.action.config

    @property
    def joint_names(self) -> list[str]:
        return self.stats.joint_names

    def act(
        self, latents: Latents, joint_positions: np.ndarray, num_inference_steps: int | None = None,
        prior: np.ndarray | None = None, prior_weights: np.ndarray | None = None, instruction: str = "",
    ) -> np.ndarray:
        """(H, J) absolute joint targets for the given state (in `joint_names`
        order); with a `prior` (H, J) of absolute targets and `prior_weights`
        (H,), inpainted toward it (`ActionDiffusion.sample`); `instruction`
        for a language-conditioned head."""
        state = self.stats.normalize_state(np.asarray(joint_positions, dtype=np.float64))
        as_tensor = lambda a: torch.as_tensor(np.asarray(a), dtype=self._dtype, device=self._device).unsqueeze(0)
        if prior is not None:
            prior_weights = torch.as_tensor(prior_weights, dtype=torch.float32, device=self._device).unsqueeze(0)
            prior = torch.as_tensor(self.stats.normalize_action(prior), dtype=torch.float32,
                                    device=self._device).unsqueeze(0)
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
