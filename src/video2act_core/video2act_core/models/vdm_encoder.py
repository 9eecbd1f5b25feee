"""System 2: spatio-motion tokens from a Stable Video Diffusion UNet.

Frames go through the SVD VAE encoder into latents, the spatio-temporal
UNet runs one denoising step at a fixed noise level, and forward hooks read
per-frame feature maps from configurable blocks. Two fixed filters refine
them (see `filters`), and learned projections turn them into tokens for the
System 1 action head.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from video2act_core.models.config import ConfigDict
from video2act_core.models.filters import boundary_weights, motion_magnitude, temporal_highpass

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


@dataclass
class VDMEncoderConfig(ConfigDict):
    """Everything needed to rebuild System 2; stored in every checkpoint."""

    # Input clip: the newest `num_frames` camera frames, resized to this.
    num_frames: int = 8
    image_height: int = 64
    image_width: int = 64
    # A local diffusers SVD directory (with unet/ and vae/), e.g. a user's
    # download of stable-video-diffusion-img2vid. Empty: build from the
    # configs below with random weights.
    pretrained_path: str = ""
    unet: dict[str, Any] = field(default_factory=lambda: dict(TINY_UNET))
    vae: dict[str, Any] = field(default_factory=lambda: dict(TINY_VAE))
    vae_scaling_factor: float = 0.18215
    # One denoising step at this EDM noise level (SVD's sigma parametrisation).
    # Low: at high noise the added noise texture dominates the Sobel map.
    sigma: float = 0.05
    noise_seed: int = 0
    # SVD's added time ids: (fps - 1, motion bucket id, noise augmentation).
    fps: int = 7
    motion_bucket_id: int = 127
    noise_aug_strength: float = 0.02
    # Blocks whose outputs are read; all are resized to the first one's grid.
    feature_blocks: list[str] = field(default_factory=lambda: ["up_blocks.0", "up_blocks.1"])
    # Tokens: the feature grid is average-pooled to this many cells per side.
    token_grid: int = 4
    token_dim: int = 128
    # FFT bins kept for motion, (low, high); empty keeps every non-DC bin.
    motion_band: list[int] = field(default_factory=list)
    # SVD's temporal layers add a frame-position embedding, so even a still
    # clip gives per-frame feature differences (6-17% measured on the tiny
    # config). Subtracting the response to a frozen clip (newest frame
    # repeated) removes that bias, at twice the UNet batch.
    cancel_frame_position_bias: bool = True


@dataclass
class RefinedMaps:
    """The filtered features before the learned projections; what stage 2
    training caches so the backbone runs once per sample."""

    spatial: torch.Tensor  # (B, C, g, g) boundary-weighted newest-frame features, pooled
    motion: torch.Tensor  # (B, C, g, g) motion magnitude, pooled
    motion_energy: torch.Tensor  # (B,) mean motion magnitude relative to feature scale
    boundary_map: torch.Tensor  # (B, 1, h, w) spatial weights of the newest frame
    motion_map: torch.Tensor  # (B, 1, h, w) channel-mean motion magnitude


@dataclass
class SpatioMotionTokens:
    spatial: torch.Tensor  # (B, N_spatial, token_dim)
    motion: torch.Tensor  # (B, N_motion, token_dim)
    motion_energy: torch.Tensor  # (B,)
    boundary_map: torch.Tensor
    motion_map: torch.Tensor


def sincos_2d_positions(grid: int, dim: int) -> torch.Tensor:
    """(grid*grid, dim) fixed position codes, row-major like the flattened
    token grid: half the channels encode the row, half the column."""
    if dim % 4:
        raise ValueError(f"token_dim must be a multiple of 4 for 2D sin-cos positions, got {dim}")
    frequencies = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float32) / (dim // 4))
    coordinate = torch.arange(grid, dtype=torch.float32)
    rows, columns = torch.meshgrid(coordinate, coordinate, indexing="ij")
    encode = lambda c: torch.cat([torch.sin(c.reshape(-1, 1) * frequencies), torch.cos(c.reshape(-1, 1) * frequencies)], dim=1)
    return torch.cat([encode(rows), encode(columns)], dim=1)


def build_backbone(config: VDMEncoderConfig) -> tuple[nn.Module, nn.Module]:
    """(unet, vae) from a local pretrained directory or from config."""
    from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel

    if config.pretrained_path:
        root = Path(config.pretrained_path).expanduser()
        if not (root / "unet").is_dir() or not (root / "vae").is_dir():
            raise FileNotFoundError(
                f"{root} is not a diffusers SVD directory: expected unet/ and vae/ subfolders"
            )
        # Lazy (low-memory) loading needs `accelerate`; without it diffusers
        # falls back anyway, with a warning on every load.
        lazy = importlib.util.find_spec("accelerate") is not None
        unet = UNetSpatioTemporalConditionModel.from_pretrained(root / "unet", local_files_only=True, low_cpu_mem_usage=lazy)
        vae = AutoencoderKLTemporalDecoder.from_pretrained(root / "vae", local_files_only=True, low_cpu_mem_usage=lazy)
    else:
        unet = UNetSpatioTemporalConditionModel(**config.unet)
        vae = AutoencoderKLTemporalDecoder(**config.vae)
    return unet, vae


class SpatioMotionEncoder(nn.Module):
    """Camera clip (B, T, 3, H, W) in [0, 1] -> spatial and motion tokens."""

    def __init__(self, config: VDMEncoderConfig, backbone: tuple[nn.Module, nn.Module] | None = None):
        super().__init__()
        self.config = config
        self.unet, self.vae = backbone if backbone is not None else build_backbone(config)
        unet_cfg = self.unet.config
        latent_channels = self.vae.config.latent_channels
        if unet_cfg.in_channels != 2 * latent_channels:
            raise ValueError(
                f"SVD UNet expects noisy + conditioning latents: in_channels={unet_cfg.in_channels} "
                f"must be 2 x VAE latent_channels={latent_channels}"
            )
        # SVD conditions cross-attention on a CLIP embedding of the first
        # frame; we learn a projection of its pooled VAE latent instead, so no
        # image encoder weights are needed.
        self.condition_embedding = nn.Linear(latent_channels, unet_cfg.cross_attention_dim)

        self._features: dict[str, torch.Tensor] = {}
        for name in config.feature_blocks:
            self.unet.get_submodule(name).register_forward_hook(self._store_features(name))
        feature_channels = self._probe_feature_channels()
        tokens = config.token_grid * config.token_grid
        self.spatial_projection = nn.Sequential(
            nn.LayerNorm(feature_channels), nn.Linear(feature_channels, config.token_dim)
        )
        self.motion_projection = nn.Sequential(
            nn.LayerNorm(feature_channels), nn.Linear(feature_channels, config.token_dim)
        )
        # Learned, but started from a 2D sin-cos table (as in DiT and MAE):
        # where a token lies in the image is what locates the target, and a
        # small random start left it for the head to discover from few demos.
        grid_positions = sincos_2d_positions(config.token_grid, config.token_dim).unsqueeze(0)
        self.spatial_position = nn.Parameter(grid_positions.clone())
        self.motion_position = nn.Parameter(grid_positions.clone())

    def _store_features(self, name: str):
        def hook(_module, _inputs, output):
            self._features[name] = output[0] if isinstance(output, tuple) else output

        return hook

    @torch.no_grad()
    def _probe_feature_channels(self) -> int:
        frames = torch.zeros(1, self.config.num_frames, 3, self.config.image_height, self.config.image_width)
        features = self._unet_features(frames.to(self.device, self.dtype))
        return features.shape[2]

    @property
    def device(self) -> torch.device:
        return self.condition_embedding.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.condition_embedding.weight.dtype

    def encode_latents(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) in [0, 1] -> scaled VAE latent means (B, T, c, h, w)."""
        batch, steps = frames.shape[:2]
        pixels = frames.flatten(0, 1) * 2.0 - 1.0
        latents = self.vae.encode(pixels).latent_dist.mode() * self.config.vae_scaling_factor
        return latents.unflatten(0, (batch, steps))

    def _denoise(self, latents: torch.Tensor, noise: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """One SVD UNet pass on `latents + sigma * noise`, conditioned on the
        first frame as SVD is; returns the raw UNet output (B, T, c, h, w).

        sigma is (B,): EDM preconditioning c_in = 1/sqrt(sigma^2 + 1),
        c_noise = log(sigma) / 4, as in Stable Video Diffusion.
        """
        cfg = self.config
        batch = latents.shape[0]
        scale = sigma.view(batch, 1, 1, 1, 1)
        condition = latents[:, :1]
        noisy = (latents + scale * noise) / torch.sqrt(scale**2 + 1.0)
        sample = torch.cat([noisy, condition.expand_as(latents)], dim=2)
        context = self.condition_embedding(condition.mean(dim=(3, 4)))  # (B, 1, cross_dim)
        time_ids = torch.tensor(
            [[cfg.fps - 1, cfg.motion_bucket_id, cfg.noise_aug_strength]], device=latents.device, dtype=latents.dtype
        ).expand(batch, 3)
        return self.unet(sample, 0.25 * torch.log(sigma), context, time_ids, return_dict=False)[0]

    def _unet_features(self, frames: torch.Tensor) -> torch.Tensor:
        """(B, T, 3, H, W) -> hooked features (B, T, C, h, w) on the first block's grid."""
        cfg = self.config
        latents = self.encode_latents(frames)
        batch, steps = latents.shape[:2]
        # Same noise for every frame: per-frame noise would itself look like motion.
        generator = torch.Generator(device="cpu").manual_seed(cfg.noise_seed)
        noise = torch.randn((1, 1, *latents.shape[2:]), generator=generator).to(latents).expand_as(latents)
        sigma = torch.full((batch,), cfg.sigma, device=latents.device, dtype=latents.dtype)

        self._features.clear()
        self._denoise(latents, noise, sigma)
        maps = [self._features[name] for name in cfg.feature_blocks]
        grid = maps[0].shape[-2:]
        resized = [m if m.shape[-2:] == grid else F.interpolate(m, size=grid, mode="bilinear", align_corners=False) for m in maps]
        features = torch.cat(resized, dim=1)
        return features.unflatten(0, (batch, steps))

    def denoising_loss(self, frames: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Stage 1: SVD's EDM v-objective on a batch of robot clips, to adapt
        the video model to the robot's scenes before its features are used."""
        latents = self.encode_latents(frames.to(self.device, self.dtype)).detach()
        batch = latents.shape[0]
        # log-normal noise levels (P_mean 0.7, P_std 1.6), as SVD fine-tunes.
        sigma = torch.exp(0.7 + 1.6 * torch.randn(batch, generator=generator)).to(latents)
        noise = torch.randn(latents.shape, generator=generator).to(latents)
        output = self._denoise(latents, noise, sigma)
        scale = sigma.view(batch, 1, 1, 1, 1)
        noisy = latents + scale * noise
        denoised = noisy / (scale**2 + 1.0) - output * scale / torch.sqrt(scale**2 + 1.0)
        weight = (scale**2 + 1.0) / scale**2
        # The conditioning frame is given, not predicted.
        return (weight * (denoised - latents) ** 2)[:, 1:].mean()

    def forward(self, frames: torch.Tensor) -> SpatioMotionTokens:
        maps = self.refine(frames)
        spatial, motion = self.tokens(maps.spatial, maps.motion)
        return SpatioMotionTokens(spatial, motion, maps.motion_energy, maps.boundary_map, maps.motion_map)

    def refine(self, frames: torch.Tensor) -> RefinedMaps:
        """Backbone features through the fixed spatial and motion filters."""
        cfg = self.config
        if frames.dim() != 5 or frames.shape[1] != cfg.num_frames or frames.shape[2] != 3:
            raise ValueError(f"expected frames (B, {cfg.num_frames}, 3, H, W), got {tuple(frames.shape)}")
        frames = frames.to(self.device, self.dtype)
        if frames.shape[-2:] != (cfg.image_height, cfg.image_width):
            frames = F.interpolate(
                frames.flatten(0, 1), size=(cfg.image_height, cfg.image_width), mode="bilinear", align_corners=False
            ).unflatten(0, frames.shape[:2])
        batch = frames.shape[0]
        band = tuple(cfg.motion_band) if cfg.motion_band else None

        if cfg.cancel_frame_position_bias:
            frozen = frames[:, -1:].expand_as(frames)
            both = self._unet_features(torch.cat([frames, frozen]))
            features, frozen_features = both[:batch], both[batch:]
            changing = temporal_highpass(features, band) - temporal_highpass(frozen_features, band)
        else:
            features = self._unet_features(frames)
            changing = temporal_highpass(features, band)

        newest = features[:, -1].float()
        boundary = boundary_weights(newest)
        motion = motion_magnitude(changing)
        feature_scale = newest.pow(2).mean(dim=(1, 2, 3)).sqrt() + 1e-6
        pool = lambda maps: F.adaptive_avg_pool2d(maps, cfg.token_grid)
        return RefinedMaps(
            spatial=pool(newest * boundary),
            motion=pool(motion),
            motion_energy=motion.mean(dim=(1, 2, 3)) / feature_scale,
            boundary_map=boundary,
            motion_map=motion.mean(dim=1, keepdim=True),
        )

    def tokens(self, spatial_maps: torch.Tensor, motion_maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled (B, C, g, g) maps -> (B, g*g, token_dim) spatial and motion tokens."""
        as_tokens = lambda maps: maps.to(self.dtype).flatten(2).transpose(1, 2)
        return (
            self.spatial_projection(as_tokens(spatial_maps)) + self.spatial_position,
            self.motion_projection(as_tokens(motion_maps)) + self.motion_position,
        )

    def head_state_dict(self) -> dict[str, torch.Tensor]:
        """Weights that are not part of the diffusers backbone."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith(("unet.", "vae."))}
