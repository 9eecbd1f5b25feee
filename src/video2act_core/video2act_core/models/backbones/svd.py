"""Stable Video Diffusion's spatio-temporal UNet as a System 2 backbone.

Frames go through SVD's VAE encoder into latents; the UNet runs one
denoising step at a small fixed noise level, and forward hooks read
per-frame feature maps from configurable blocks, resized to the first
block's grid and concatenated.

SVD's cross-attention is conditioned on the CLIP image embedding of the
clip's first frame. A pretrained directory with `image_encoder/` (the
download's CLIPVisionModelWithProjection) gets exactly that, so pretrained
weights see the conditioning they were trained on; without one (the tiny
configs) a learned projection of the first frame's pooled VAE latent
stands in.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from video2act_core.models.backbones import VideoBackbone

# A Stable Video Diffusion UNet small enough for CPU tests and the demo:
# same block types as the real one (../shared/ENVIRONMENT.md), 1.3 M params.
TINY_UNET: dict[str, Any] = {
    "sample_size": 16,
    "in_channels": 8,
    "out_channels": 4,
    "down_block_types": ["CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"],
    "up_block_types": ["UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"],
    "block_out_channels": [32, 64],
    "layers_per_block": 1,
    "cross_attention_dim": 64,
    "num_attention_heads": [2, 4],
    "addition_time_embed_dim": 32,
    "projection_class_embeddings_input_dim": 96,
    "num_frames": 8,
}
TINY_VAE: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D", "DownEncoderBlock2D"],
    "block_out_channels": [32, 64],
    "layers_per_block": 1,
    "latent_channels": 4,
}


def latent_size(pixels: int, vae_levels: int) -> int:
    """A frame side in SVD's VAE latents: each encoder level but the last
    halves it, rounding down (right/bottom padding, stride 2)."""
    for _ in range(vae_levels - 1):
        pixels //= 2
    return pixels


def unet_block_size(latent: int, levels: int, block: str) -> int | None:
    """A latent side at the output of one of the UNet's blocks (down_blocks.i,
    mid_block, up_blocks.i): each down block but the last halves it,
    rounding up (padding 1, stride 2); each up block but the last upsamples
    to the skip of the level above. None for any other module name."""
    sizes = [latent]
    for _ in range(levels - 1):
        sizes.append(-(-sizes[-1] // 2))
    match = re.fullmatch(r"(down|up)_blocks\.(\d+)|mid_block", block)
    if match is None:
        return None
    if match[0] == "mid_block":
        return sizes[-1]
    index = int(match[2])
    if match[1] == "down":
        return sizes[min(index + 1, levels - 1)]
    return sizes[max(levels - 2 - index, 0)]


# CLIP's pixel statistics, as SVD's feature extractor normalises them.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def load_clip_image_encoder(root: Path):
    """The download's CLIPVisionModelWithProjection (`image_encoder/`), frozen."""
    try:
        from transformers import CLIPVisionModelWithProjection
        from transformers.utils import logging
    except ImportError as error:
        raise RuntimeError(f"{root / 'image_encoder'} needs the transformers package") from error
    logging.disable_progress_bar()
    model = CLIPVisionModelWithProjection.from_pretrained(root / "image_encoder", local_files_only=True)
    return model.requires_grad_(False).eval()  # SVD fine-tunes keep CLIP frozen; so does stage 1


class SVDBackbone(VideoBackbone):
    temporal_compression = 1

    def __init__(
        self,
        pretrained_path: str = "",
        unet: dict[str, Any] | None = None,
        vae: dict[str, Any] | None = None,
        vae_scaling_factor: float = 0.18215,
        # One denoising step at this EDM noise level (SVD's sigma
        # parametrisation). Low: at high noise the added noise texture
        # dominates the features.
        sigma: float = 0.05,
        noise_seed: int = 0,
        # SVD's added time ids: (fps - 1, motion bucket id, noise augmentation).
        fps: int = 7,
        motion_bucket_id: int = 127,
        noise_aug_strength: float = 0.02,
        # Blocks whose outputs are read; all are resized to the first one's grid.
        feature_blocks: tuple[str, ...] = ("up_blocks.0", "up_blocks.1"),
    ):
        super().__init__()
        from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel

        self.check_arguments(
            {"sigma": sigma, "vae_scaling_factor": vae_scaling_factor, "feature_blocks": feature_blocks}
        )

        self.image_encoder = None  # CLIP, from a download's image_encoder/
        if pretrained_path:
            root = Path(pretrained_path).expanduser()
            if not (root / "unet").is_dir() or not (root / "vae").is_dir():
                raise FileNotFoundError(f"{root} is not a diffusers SVD directory: expected unet/ and vae/ subfolders")
            # Lazy (low-memory) loading needs `accelerate`; without it diffusers
            # falls back anyway, with a warning on every load.
            lazy = importlib.util.find_spec("accelerate") is not None
            self.unet = UNetSpatioTemporalConditionModel.from_pretrained(
                root / "unet", local_files_only=True, low_cpu_mem_usage=lazy
            )
            self.vae = AutoencoderKLTemporalDecoder.from_pretrained(
                root / "vae", local_files_only=True, low_cpu_mem_usage=lazy
            )
            if (root / "image_encoder").is_dir():
                self.image_encoder = load_clip_image_encoder(root)
        else:
            self.unet = UNetSpatioTemporalConditionModel(**(unet or TINY_UNET))
            self.vae = AutoencoderKLTemporalDecoder(**(vae or TINY_VAE))
        latent_channels = self.vae.config.latent_channels
        if self.unet.config.in_channels != 2 * latent_channels:
            raise ValueError(
                f"SVD UNet expects noisy + conditioning latents: in_channels={self.unet.config.in_channels} "
                f"must be 2 x VAE latent_channels={latent_channels}"
            )
        self.vae_scaling_factor = vae_scaling_factor
        self.sigma, self.noise_seed = sigma, noise_seed
        self.time_ids = (fps - 1, motion_bucket_id, noise_aug_strength)
        self.feature_blocks = list(feature_blocks)
        # Without CLIP: a learned projection of the first frame's pooled VAE
        # latent stands in for its embedding (module docstring).
        self.condition_embedding = torch.nn.Linear(latent_channels, self.unet.config.cross_attention_dim)
        if self.image_encoder is not None:
            if self.image_encoder.config.projection_dim != self.unet.config.cross_attention_dim:
                raise ValueError(
                    f"CLIP image encoder projection_dim={self.image_encoder.config.projection_dim} must "
                    f"equal the UNet's cross_attention_dim={self.unet.config.cross_attention_dim}"
                )
            self.register_buffer("clip_mean", torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), persistent=False)
            self.register_buffer("clip_std", torch.tensor(CLIP_STD).view(1, 3, 1, 1), persistent=False)
        self._features: dict[str, torch.Tensor] = {}
        modules = dict(self.unet.named_modules())
        for name in self.feature_blocks:
            if not name or name not in modules:  # "" names the UNet itself
                levels = len(self.unet.config.block_out_channels)
                raise ValueError(
                    f"backbone.feature_blocks={self.feature_blocks!r}: {name!r} is not a block of the "
                    f"UNet; expected names such as down_blocks.0..{levels - 1}, mid_block, "
                    f"up_blocks.0..{levels - 1}"
                )
            self.unet.get_submodule(name).register_forward_hook(self._store_features(name))
        with torch.no_grad():
            probe = torch.zeros(1, 2, 3, 32, 32)
            self.feature_channels = self.features(self.encode(probe)).shape[2]

    @classmethod
    def check_arguments(cls, arguments: dict[str, Any]) -> None:
        for name in ("sigma", "vae_scaling_factor"):
            # c_noise = log(sigma) / 4; latents are scaled by the factor.
            if not arguments[name] > 0:
                raise ValueError(f"backbone.{name}={arguments[name]!r}: expected > 0")
        if not arguments["feature_blocks"]:
            raise ValueError(
                f"backbone.feature_blocks={arguments['feature_blocks']!r}: expected at least one "
                "UNet block name, e.g. up_blocks.1"
            )

    def feature_grid(self, height: int, width: int) -> tuple[int, int] | None:
        """The grid of the first feature block's maps (the one all are resized
        to), for the UNet's own block names; None for a sub-module."""
        vae_levels = len(self.vae.config.block_out_channels)
        unet_levels = len(self.unet.config.block_out_channels)
        grid = tuple(
            unet_block_size(latent_size(side, vae_levels), unet_levels, self.feature_blocks[0])
            for side in (height, width)
        )
        return None if None in grid else grid

    def _store_features(self, name: str):
        def hook(_module, _inputs, output):
            self._features[name] = output[0] if isinstance(output, tuple) else output

        return hook

    def diffusers_modules(self) -> dict[str, torch.nn.Module]:
        modules = {"unet": self.unet, "vae": self.vae}
        if self.image_encoder is not None:
            modules["image_encoder"] = self.image_encoder
        return modules

    def context(self, frames: torch.Tensor) -> torch.Tensor | None:
        """CLIP's image embedding of each clip's first frame (B, 1, D), as
        the SVD pipeline conditions on its input image; None without CLIP."""
        if self.image_encoder is None:
            return None
        size = self.image_encoder.config.image_size
        first = F.interpolate(
            frames[:, 0].float(), size=(size, size), mode="bicubic", align_corners=False, antialias=True
        ).clamp(0.0, 1.0)
        pixels = (first - self.clip_mean) / self.clip_std
        return self.image_encoder(pixel_values=pixels.to(self.image_encoder.dtype)).image_embeds.unsqueeze(1)

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) in [0, 1] -> scaled VAE latent means (B, T, c, h, w)."""
        batch, steps = frames.shape[:2]
        pixels = (frames.flatten(0, 1) * 2.0 - 1.0).to(self.vae.dtype)
        latents = self.vae.encode(pixels).latent_dist.mode() * self.vae_scaling_factor
        return latents.unflatten(0, (batch, steps))

    def _denoise(
        self, latents: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor, context: torch.Tensor | None = None
    ) -> torch.Tensor:
        """One SVD UNet pass on `latents + sigma * noise`, conditioned on the
        first frame as SVD is (its latents concatenated, and `context` or the
        learned stand-in for its CLIP embedding); returns the raw UNet output
        (B, T, c, h, w).

        sigma is (B,): EDM preconditioning c_in = 1/sqrt(sigma^2 + 1),
        c_noise = log(sigma) / 4, as in Stable Video Diffusion.
        """
        batch = latents.shape[0]
        scale = sigma.view(batch, 1, 1, 1, 1)
        condition = latents[:, :1]
        noisy = (latents + scale * noise) / torch.sqrt(scale**2 + 1.0)
        sample = torch.cat([noisy, condition.expand_as(latents)], dim=2)
        if context is None:
            pooled = condition.mean(dim=(3, 4))
            context = self.condition_embedding(pooled.to(self.condition_embedding.weight.dtype))  # (B, 1, cross_dim)
        dtype = self.unet.dtype  # a frozen UNet may be in bf16 while this module's own weights stay float32
        context = context.to(dtype)
        time_ids = torch.tensor([self.time_ids], device=latents.device, dtype=dtype).expand(batch, 3)
        return self.unet(sample.to(dtype), 0.25 * torch.log(sigma).to(dtype), context, time_ids, return_dict=False)[0]

    def features(self, latents: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, c, h, w) -> hooked features (B, T, C, h', w') on the first block's grid."""
        batch, steps = latents.shape[:2]
        # Same noise for every frame: per-frame noise would itself look like motion.
        generator = torch.Generator(device="cpu").manual_seed(self.noise_seed)
        noise = (
            torch.randn((1, 1, *latents.shape[2:]), generator=generator, device="cpu").to(latents).expand_as(latents)
        )
        sigma = torch.full((batch,), self.sigma, device=latents.device, dtype=latents.dtype)
        self._features.clear()
        self._denoise(latents, noise, sigma, context)
        maps = [self._features[name] for name in self.feature_blocks]
        grid = maps[0].shape[-2:]
        resized = [
            m if m.shape[-2:] == grid else F.interpolate(m, size=grid, mode="bilinear", align_corners=False)
            for m in maps
        ]
        return torch.cat(resized, dim=1).unflatten(0, (batch, steps))

    def denoising_loss(
        self, latents: torch.Tensor, generator: torch.Generator | None = None, context: torch.Tensor | None = None
    ) -> torch.Tensor:
        """SVD's EDM v-objective on a batch of robot clips' latents."""
        batch = latents.shape[0]
        # log-normal noise levels (P_mean 0.7, P_std 1.6), as SVD fine-tunes.
        sigma = torch.exp(0.7 + 1.6 * torch.randn(batch, generator=generator)).to(latents)
        noise = torch.randn(latents.shape, generator=generator).to(latents)
        output = self._denoise(latents, noise, sigma, context).float()
        # The loss in float32 whatever the UNet's precision: its weight reaches ~150 at small sigma.
        latents, noise, sigma = latents.float(), noise.float(), sigma.float()
        scale = sigma.view(batch, 1, 1, 1, 1)
        noisy = latents + scale * noise
        denoised = noisy / (scale**2 + 1.0) - output * scale / torch.sqrt(scale**2 + 1.0)
        weight = (scale**2 + 1.0) / scale**2
        # The conditioning frame is given, not predicted.
        return (weight * (denoised - latents) ** 2)[:, 1:].mean()
