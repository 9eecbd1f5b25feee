"""Video diffusion backbones read as feature extractors: one module per
model, all behind `VideoBackbone`, built by `build_backbone` from the
`backbone` section of System 2's config (`type` picks the module).

System 2 calls a backbone twice per update: the spatial stream is one
frame, the motion stream a clip. Either way a clip goes in and per-frame
feature maps come out; the filters and formers after it do not know which
model made them.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

# The flow-matching transformers (Wan, HunyuanVideo) map a noise level s in
# [0, 1] to their timestep s * 1000; their stage-1 loss draws s uniformly or
# logit-normally (more weight on mid-range noise, as SD3 trains).
NUM_TRAIN_TIMESTEPS = 1000
TIMESTEP_SAMPLINGS = ("uniform", "logit_normal")


class VideoBackbone(nn.Module):
    """The interface every backbone module implements.

    - `encode(frames)`: (B, T, 3, H, W) in [0, 1] -> latents (B, t, c, h, w)
      as the denoiser takes them (scaled); t = 1 + (T - 1) // temporal_compression
      for causal video VAEs (Wan), t = T for per-frame VAEs (SVD).
    - `context(frames)`: what the denoiser is conditioned on that only the
      pixels give (SVD's CLIP embedding of the first frame, when its
      image encoder is loaded), or None: the model's own default.
    - `features(latents, context)`: one pass of the denoiser on clean
      latents (or at a small fixed noise level), read inside the network:
      (B, t, C, h', w'). Deterministic: the same latents give the same
      features.
    - `denoising_loss(latents, generator, context)`: the model's own
      training objective on robot clips (stage 1 of training).
    - `feature_channels`, `temporal_compression`: what System 2 needs to
      size its formers and to convert its motion band to latent frames.
    - `diffusers_modules()`: name -> the pretrained models it wraps (e.g.
      unet, vae, a transformers image_encoder); `save(directory)` writes each
      to directory/<name> in their save_pretrained layout, reloadable with
      `pretrained_path=directory`. Any
      other parameter (a learned conditioning, say) belongs to System 2's
      head weights.
    - `trained_end_to_end`: False for video models (frozen after stage 1,
      their maps cached); True for an image encoder trained with System 1.
    """

    feature_channels: int
    temporal_compression: int
    trained_end_to_end = False

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def context(self, frames: torch.Tensor) -> torch.Tensor | None:
        return None

    def features(self, latents: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def denoising_loss(self, latents: torch.Tensor, generator: torch.Generator | None = None,
                       context: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def diffusers_modules(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def save(self, directory) -> None:
        for name, module in self.diffusers_modules().items():
            module.save_pretrained(Path(directory) / name, safe_serialization=True)


def check_flow_options(timestep: float, loss_timestep_sampling: str) -> None:
    if not 0.0 <= timestep <= NUM_TRAIN_TIMESTEPS:
        raise ValueError(f"timestep={timestep}: expected 0..{NUM_TRAIN_TIMESTEPS}")
    if loss_timestep_sampling not in TIMESTEP_SAMPLINGS:
        raise ValueError(f"loss_timestep_sampling='{loss_timestep_sampling}': expected one of {TIMESTEP_SAMPLINGS}")


def transformer_and_vae(model: str, transformer_class, vae_class, pretrained_path: str,
                        transformer: dict[str, Any], vae: dict[str, Any]) -> tuple[nn.Module, nn.Module]:
    """A video transformer and its VAE: loaded from a local diffusers
    directory (transformer/ and vae/ inside), or built from configs."""
    if not pretrained_path:
        return transformer_class(**transformer), vae_class(**vae)
    root = Path(pretrained_path).expanduser()
    if not (root / "transformer").is_dir() or not (root / "vae").is_dir():
        raise FileNotFoundError(f"{root} is not a diffusers {model} directory: expected transformer/ and vae/ subfolders")
    return load_local(transformer_class, root / "transformer"), load_local(vae_class, root / "vae")


def flow_noise_levels(batch: int, sampling: str, generator: torch.Generator | None) -> torch.Tensor:
    """(batch,) noise levels in (0, 1) for a flow-matching loss."""
    if sampling == "logit_normal":
        return torch.sigmoid(torch.randn(batch, generator=generator))
    return torch.rand(batch, generator=generator)


def load_local(model_class, directory: Path):
    """A diffusers model saved in `directory` (save_pretrained layout).

    diffusers (0.42.1) loads models that keep modules in fp32, as the Wan
    and HunyuanVideo transformers do, only through `accelerate`; without it
    the safetensors files are read here into a model built from the saved
    config.
    """
    if importlib.util.find_spec("accelerate") is not None:
        return model_class.from_pretrained(directory, local_files_only=True)
    weight_files = sorted(directory.glob("diffusion_pytorch_model*.safetensors"))
    if not weight_files:
        raise FileNotFoundError(f"{directory} holds no diffusion_pytorch_model*.safetensors weights")
    model = model_class.from_config(model_class.load_config(directory))
    state_dict = {}
    for weight_file in weight_files:
        state_dict.update(load_file(weight_file))
    model.load_state_dict(state_dict)
    return model.eval()


def build_backbone(options: dict[str, Any]) -> VideoBackbone:
    """The backbone named by options['type'] ('svd', 'wan', 'hunyuan' or 'resnet'),
    built from the rest of `options` (a local `pretrained_path`, or configs)."""
    options = dict(options)
    kind = options.pop("type", "svd")
    if kind == "svd":
        from video2act_core.models.backbones.svd import SVDBackbone

        return SVDBackbone(**options)
    if kind == "wan":
        from video2act_core.models.backbones.wan import WanBackbone

        return WanBackbone(**options)
    if kind == "hunyuan":
        from video2act_core.models.backbones.hunyuan import HunyuanVideoBackbone

        return HunyuanVideoBackbone(**options)
    if kind == "resnet":
        from video2act_core.models.backbones.resnet import ResNetBackbone

        return ResNetBackbone(**options)
    raise ValueError(f"unknown System 2 backbone type '{kind}' (svd, wan, hunyuan, resnet)")
