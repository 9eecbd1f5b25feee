"""System 2: spatial and motion tokens from a video diffusion backbone.

Two streams, as in the paper, each through the backbone (`backbones/`):
- spatial: the newest frame alone at the full input resolution; per-channel
  gradient magnitude (Sobel by default) of its feature maps says where the
  boundaries are;
- motion: the whole clip (`num_frames` at `motion_fps`) at a lower
  resolution, brought to one brightness; the energy of its features inside
  a band given in Hz, above the clip's own noise floor, says what moves and
  how much.
With `filter_at: latents` the same filters act on the VAE latents before the
denoiser instead (the official code's order): the spatial stream reads the
features of the newest frame's Sobel-filtered latents, the motion stream
those of the band-passed latent clip (inverse FFT), each against the
features of all-zero latents.

Baselines switch the filters off (`spatial_filter: none`, `motion_filter:
none`): the spatial stream is then the newest frame's raw features, the
motion stream the clip's features averaged over time, as a policy that
reads a video model's features directly (VPP) or an image encoder's
(Diffusion Policy) sees them.

Image tokens (optional, `view_cameras` > 0), as RDT's System 1 reads
SigLIP tokens of several cameras and history frames: the backbone's own
features of each camera's recent frames (the video camera first, then the
other cameras in order), unfiltered, or with `image_encoder_path` a local
SigLIP's patch tokens of them, pooled to `view_grid` cells, with a
learned embedding per camera and history frame, through the paper's
LayerNorm former. They carry what the filters drop (colour, texture, a
wrist camera's close view).

Two forms of the streams (`stream_form`):
- paper (the official code's, the full-size configs' default): the filters
  act on the latents, and the tokens are the signed features of every cell
  of the newest frame's Sobel-filtered latents and of every cell of every
  latent frame of the band-passed clip (no window), through the paper's
  former (LayerNorm, Linear, GELU, Linear; no positions: the video model's
  own position encoding is in its features). Motion tokens keep when and in
  which phase things move, and which way.
- energy (ours, the tiny configs'): one unsigned value per pooled cell, the
  motion collapsed to its energy over time above a noise floor, each
  stream's former a fixed per-channel scale, a 2-layer MLP and positions: a
  per-token LayerNorm would blow every cell with any change up to the same
  size, so the tokens would say "something changed, somewhere" instead of
  where and how much. The scale is set from the training data
  (`fit_scales`), so the tokens of a static scene are the former of zero:
  the static tokens.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from video2act_core.data.frames import ViewSpec, view_frame_indices
from video2act_core.models.backbones import backbone_arguments, backbone_class, build_backbone
from video2act_core.models.backbones.svd import TINY_UNET, TINY_VAE
from video2act_core.models.config import ConfigDict
from video2act_core.models.filters import (
    SPATIAL_FILTERS,
    above_noise_floor,
    band_bins,
    band_magnitude,
    band_pass,
    equalise_brightness,
    gradient_magnitude,
)
from video2act_core.models.image_encoder import SiglipImageEncoder

FILTER_PLACES = ("features", "latents")
STREAM_FORMS = ("paper", "energy")
MOTION_FILTERS = ("band", "none")
UNFILTERED = "none"


def tiny_svd_backbone() -> dict[str, Any]:
    # The finer block first: its grid is the one features are resized to.
    return {
        "type": "svd",
        "unet": dict(TINY_UNET),
        "vae": dict(TINY_VAE),
        "sigma": 0.05,
        "feature_blocks": ["up_blocks.1", "up_blocks.0"],
    }


@dataclass
class VDMEncoderConfig(ConfigDict):
    """Everything needed to rebuild System 2; stored in every checkpoint."""

    # The video model (`backbones.build_backbone`): type svd or wan, a local
    # `pretrained_path` or configs to build with random weights.
    backbone: dict[str, Any] = field(default_factory=tiny_svd_backbone)
    # Spatial stream: the newest frame at this size (frames are stored and
    # buffered at it too).
    image_height: int = 64
    image_width: int = 64
    spatial_filter: str = "sobel"
    # Cells per side the stream's maps are pooled to; with the paper form,
    # None keeps the backbone's own grid (and its aspect).
    spatial_grid: int | None = 8
    # Motion stream: the last `num_frames` frames, `motion_fps` apart, at
    # this size; the motion band in Hz (checked against Nyquist and the
    # clip's frequency resolution).
    num_frames: int = 32
    motion_fps: float = 15.0
    motion_height: int = 32
    motion_width: int = 32
    motion_band_hz: list[float] = field(default_factory=lambda: [1.5, 4.0])
    # band: energy in motion_band_hz above the noise floor; none: the clip's
    # features averaged over time (baselines without the motion filter).
    motion_filter: str = "band"
    motion_grid: int | None = 8
    # paper or energy (the module's docstring). The noise floor and the frame
    # position bias below belong to the energy form.
    stream_form: str = "energy"
    # Each frame's channels scaled to the clip's mean level: flicker and
    # auto exposure are not motion.
    equalise_brightness: bool = True
    # Cells at most `noise_floor_factor` x the `noise_floor_quantile` of the
    # image's motion energy count as sensor noise (0: keep everything).
    noise_floor_quantile: float = 0.25
    noise_floor_factor: float = 4.0
    # Temporal layers add a frame-position embedding, so even a still clip
    # gives per-frame feature differences; subtracting the response to a
    # frozen clip (newest frame repeated) removes them, at twice the batch.
    cancel_frame_position_bias: bool = True
    # Where the Sobel and band-pass filters act: on the backbone's features
    # ("features"), or on the VAE latents before the denoiser ("latents", as
    # the official code), whose features are then read against those of
    # all-zero latents (nothing to see, nothing moving).
    filter_at: str = "features"
    # Image tokens: how many cameras give them (0: none; the video camera is
    # the first, `extra_camera_topics` in the params the others), how many
    # frames each, `view_spacing_s` apart, pooled to `view_grid` cells.
    view_cameras: int = 0
    view_history: int = 2
    view_spacing_s: float = 0.2
    view_grid: int = 4
    # Image tokens from a local SigLIP vision model directory (RDT's image
    # tokens: `image_encoder.py`) instead of the backbone's features; pooled
    # to `view_grid` (27 keeps SigLIP-so400m's 27 x 27 patches).
    image_encoder_path: str = ""
    # false: the image tokens reach System 1 as the features are, per cell
    # (an RDT head's own img_adaptor reads them, as RDT reads SigLIP's).
    view_former: bool = True
    token_dim: int = 128
    former_hidden: int = 256

    def __post_init__(self) -> None:
        super().__post_init__()
        try:
            backbone_arguments(self.backbone)
        except ValueError as error:
            raise ValueError(f"{type(self).__name__}.{error}") from None
        for name in (
            "image_height",
            "image_width",
            "motion_height",
            "motion_width",
            "view_grid",
            "token_dim",
            "former_hidden",
        ):
            if getattr(self, name) < 1:
                raise self.invalid(name, "an int >= 1")
        for name in ("spatial_grid", "motion_grid"):
            grid = getattr(self, name)
            if grid is None and self.stream_form != "paper":
                raise self.invalid(name, "an int >= 1 (the backbone's own grid, None, is for stream_form: paper)")
            if grid is not None and grid < 1:
                raise self.invalid(name, "an int >= 1, or None for the backbone's own grid")
        if self.stream_form not in STREAM_FORMS:
            raise self.invalid("stream_form", f"one of {STREAM_FORMS}")
        if self.stream_form == "paper" and self.filter_at != "latents":
            raise self.invalid("filter_at", "'latents' with stream_form: paper (the official code filters the latents)")
        if self.token_dim % 4:
            raise self.invalid("token_dim", "a multiple of 4 (2D sin-cos positions: sin and cos of rows and columns)")
        if self.spatial_filter not in (*SPATIAL_FILTERS, UNFILTERED):
            raise self.invalid("spatial_filter", f"one of {(*SPATIAL_FILTERS, UNFILTERED)}")
        if self.motion_filter not in MOTION_FILTERS:
            raise self.invalid("motion_filter", f"one of {MOTION_FILTERS}")
        if self.filter_at not in FILTER_PLACES:
            raise self.invalid("filter_at", f"one of {FILTER_PLACES}")
        if self.filter_at == "latents" and UNFILTERED in (self.spatial_filter, self.motion_filter):
            raise self.invalid(
                "filter_at",
                f"'features' with spatial_filter={self.spatial_filter!r} and "
                f"motion_filter={self.motion_filter!r} (filter_at: latents needs both "
                "filters; unfiltered streams read the features)",
            )
        if self.num_frames < 2:
            raise self.invalid("num_frames", "at least 2 frames in the motion clip")
        if not self.motion_fps > 0:
            raise self.invalid("motion_fps", "> 0")
        self._check_motion_band()
        if not 0.0 <= self.noise_floor_quantile <= 1.0:
            raise self.invalid("noise_floor_quantile", "a quantile in [0, 1]")
        if not self.noise_floor_factor >= 0.0:
            raise self.invalid("noise_floor_factor", ">= 0 (0: keep everything)")
        if self.view_cameras < 0:
            raise self.invalid("view_cameras", ">= 0 (0: no image tokens)")
        if self.view_cameras and self.view_history < 1:
            raise self.invalid("view_history", f">= 1 frame per camera with view_cameras={self.view_cameras}")
        if self.view_cameras and not self.view_spacing_s >= 0.0:
            raise self.invalid("view_spacing_s", f">= 0 s with view_cameras={self.view_cameras}")
        if self.image_encoder_path and not self.view_cameras:
            raise self.invalid("image_encoder_path", "'' with view_cameras=0 (it makes the image tokens)")

    def _check_motion_band(self) -> None:
        """[low, high] Hz in order; with the band filter, a band the motion
        clip's latent frames resolve (below their Nyquist frequency, holding
        at least one of their rFFT bins)."""
        band = self.motion_band_hz
        if len(band) != 2 or not 0.0 < band[0] < band[1]:
            raise self.invalid("motion_band_hz", "[low, high] in Hz with 0 < low < high")
        if self.motion_filter != "band":
            return
        kind = self.backbone.get("type", "svd")
        frames, fps = self.latent_frames_and_rate(backbone_class(kind).temporal_compression)
        clip = f"the {kind} backbone's {frames} latent frames at {fps:g} fps"
        if band[1] > fps / 2.0 + 1e-9:
            raise self.invalid("motion_band_hz", f"high <= {fps / 2.0:g} Hz, the Nyquist frequency of {clip}")
        try:
            band_bins(frames, fps, (band[0], band[1]))
        except ValueError:
            raise self.invalid(
                "motion_band_hz",
                f"a band holding one of the frequencies of {clip} (their bins are "
                f"{fps / frames:.3g} Hz apart): lengthen the clip or widen the "
                "band",
            ) from None

    def check_feature_grids(
        self, feature_grid: Callable[[int, int], tuple[int, int] | None], size_multiple: int = 1
    ) -> None:
        """Frame sizes the backbone takes; a warning for a pooling grid
        larger than its feature maps (it only repeats cells: tokens that
        carry nothing new; the shipped full-size Wan and tiny DP configs do
        so, and their figures were measured that way).

        Args:
            feature_grid: (height, width) of a frame -> (h', w') of its
                feature maps, or None where unknown (`VideoBackbone.feature_grid`).
            size_multiple: frame sides must be multiples of it (pixels per
                feature cell of the transformer backbones).
        """
        kind = self.backbone.get("type", "svd")
        for name in ("image_height", "image_width", "motion_height", "motion_width"):
            if getattr(self, name) % size_multiple:
                raise self.invalid(
                    name, f"a multiple of {size_multiple}, the {kind} backbone's pixels per feature cell"
                )
        grids = [("spatial_grid", "image"), ("motion_grid", "motion")]
        backbone_views = self.view_cameras and not self.image_encoder_path
        for name, stream in grids + ([("view_grid", "image")] if backbone_views else []):
            height, width = getattr(self, f"{stream}_height"), getattr(self, f"{stream}_width")
            cells = feature_grid(height, width)
            if cells is not None and getattr(self, name) is not None and getattr(self, name) > min(cells):
                warnings.warn(
                    f"{type(self).__name__}.{name}={getattr(self, name)} repeats cells: the {kind} "
                    f"backbone's features of a {height}x{width} frame are {cells[0]}x{cells[1]} cells",
                    GridRepeatsCellsWarning,
                    stacklevel=2,
                )

    def latent_frames_and_rate(self, temporal_compression: int) -> tuple[int, float]:
        """The motion clip as the backbone's latents see it: frames and their rate."""
        return 1 + (self.num_frames - 1) // temporal_compression, self.motion_fps / temporal_compression


class GridRepeatsCellsWarning(UserWarning):
    """A pooling grid larger than the feature maps it pools."""


@dataclass
class RefinedMaps:
    """The filtered features before the formers; what stage 2 training
    caches so the backbone runs once per sample."""

    # energy form: (B, C, gs, gs) mean edge strength per cell of the newest
    # frame; paper form: (B, C, hs, ws) signed features of its edges.
    spatial: torch.Tensor
    # energy form: (B, C, gm, gm) in-band motion energy above the noise floor
    # per cell; paper form: (B, C, t, hm, wm) signed features of the
    # band-passed latent frames.
    motion: torch.Tensor
    motion_energy: torch.Tensor  # (B,) mean motion relative to the feature scale
    boundary_map: torch.Tensor  # (B, 1, h, w) channel-mean edge strength (for display)
    motion_map: torch.Tensor  # (B, 1, h, w) channel-mean motion (for display)
    views: torch.Tensor | None = None  # (B, V*K, C, gv, gv) pooled features per camera and history frame


@dataclass
class SpatioMotionTokens:
    spatial: torch.Tensor  # (B, cells, token_dim)
    motion: torch.Tensor  # (B, cells (x latent frames in the paper form), token_dim)
    motion_energy: torch.Tensor  # (B,)
    boundary_map: torch.Tensor
    motion_map: torch.Tensor
    views: torch.Tensor | None = None  # (B, V*K*gv*gv, token_dim) image tokens


def sincos_2d_positions(grid: int, dim: int) -> torch.Tensor:
    """(grid*grid, dim) fixed position codes, row-major like the flattened
    token grid: half the channels encode the row, half the column."""
    frequencies = 1.0 / 10000 ** (torch.arange(dim // 4, dtype=torch.float32) / (dim // 4))
    coordinate = torch.arange(grid, dtype=torch.float32)
    rows, columns = torch.meshgrid(coordinate, coordinate, indexing="ij")
    encode = lambda c: torch.cat(
        [torch.sin(c.reshape(-1, 1) * frequencies), torch.cos(c.reshape(-1, 1) * frequencies)], dim=1
    )
    return torch.cat([encode(rows), encode(columns)], dim=1)


class StreamFormer(nn.Module):
    """Pooled stream maps (B, C, g, g) -> tokens (B, g*g, token_dim).

    The paper's former is LayerNorm + 2-layer MLP; here a fixed per-channel
    scale replaces the LayerNorm so that a cell's magnitude survives: zero
    maps give the same "nothing here" tokens for every input, and a token
    moves further from them the stronger its cell's edge or motion.
    """

    def __init__(self, channels: int, token_dim: int, hidden: int, grid: int):
        super().__init__()
        self.register_buffer("scale", torch.ones(channels))
        self.mlp = nn.Sequential(nn.Linear(channels, hidden), nn.GELU(), nn.Linear(hidden, token_dim))
        # Learned, but started from a 2D sin-cos table (as in DiT and MAE):
        # where a token lies in the image is what locates the target.
        self.position = nn.Parameter(sincos_2d_positions(grid, token_dim).unsqueeze(0))

    @torch.no_grad()
    def fit_scale(self, maps: torch.Tensor) -> None:
        """Per-channel RMS over a dataset's maps (N, C, g, g)."""
        rms = maps.float().pow(2).mean(dim=(0, 2, 3)).sqrt()
        self.scale.copy_(torch.where(rms > 0, rms, torch.ones_like(rms)).to(self.scale))

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        cells = maps.to(self.scale.dtype).flatten(2).transpose(1, 2) / self.scale
        return self.mlp(cells) + self.position


class PaperFormer(nn.Module):
    """Stream maps (B, C, *grid) -> tokens (B, cells, token_dim), one per
    cell in (frame,) row, column order: the official code's former, a
    LayerNorm over channels, Linear, GELU (tanh), Linear, initialised as it
    is (std 0.02, zero biases). No positions: the official head adds none to
    the video tokens; where a token lies is in its features (Wan's 3D RoPE)."""

    def __init__(self, channels: int, token_dim: int, hidden: int):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.LayerNorm(channels),
            nn.Linear(channels, hidden),
            nn.GELU(approximate="tanh"),
            nn.Linear(hidden, token_dim),
        )
        for layer in (self.mlp[1], self.mlp[3]):
            nn.init.normal_(layer.weight, std=0.02)
            nn.init.zeros_(layer.bias)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return self.mlp(maps.to(self.mlp[1].weight.dtype).flatten(2).transpose(1, 2))


class ViewFormer(nn.Module):
    """Pooled per-frame maps (B, V*K, C, g, g) -> image tokens (B, V*K*g*g,
    token_dim): the paper's former (LayerNorm + 2-layer MLP) per cell, cell
    positions, and which camera and history frame the tokens came from.
    Unlike the streams' tokens these say what is where, not how much it
    changed: normalising each cell is what lets a small target's cell speak
    as loud as the arm's (a probe on the shipped backbone's features found
    the reach target with half the squared error from LayerNorm'd cells as
    from fixed-scale ones)."""

    def __init__(self, channels: int, token_dim: int, hidden: int, grid: int, views: int):
        super().__init__()
        self.mlp = nn.Sequential(
            nn.LayerNorm(channels), nn.Linear(channels, hidden), nn.GELU(), nn.Linear(hidden, token_dim)
        )
        self.position = nn.Parameter(sincos_2d_positions(grid, token_dim).unsqueeze(0))
        self.view = nn.Parameter(torch.zeros(views, 1, token_dim))
        nn.init.normal_(self.view, std=0.02)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        cells = maps.to(self.position.dtype).flatten(3).transpose(2, 3)  # (B, V*K, g*g, C)
        return (self.mlp(cells) + self.position + self.view).flatten(1, 2)


def build_formers(
    config: VDMEncoderConfig, channels: int, view_channels: int
) -> tuple[nn.Module, nn.Module, ViewFormer | None]:
    """The token projections of the spatial and motion streams (`channels`
    wide features) and of the image tokens (`view_channels`; None without
    image tokens or a view former)."""
    if config.stream_form == "paper":
        spatial = PaperFormer(channels, config.token_dim, config.former_hidden)
        motion = PaperFormer(channels, config.token_dim, config.former_hidden)
    else:
        spatial = StreamFormer(channels, config.token_dim, config.former_hidden, config.spatial_grid)
        motion = StreamFormer(channels, config.token_dim, config.former_hidden, config.motion_grid)
    views = None
    if config.view_cameras and config.view_former:
        frames = config.view_cameras * config.view_history
        views = ViewFormer(view_channels, config.token_dim, config.former_hidden, config.view_grid, frames)
    return spatial, motion, views


class SpatioMotionEncoder(nn.Module):
    """Camera clip (B, T, 3, H, W) in [0, 1] -> spatial and motion tokens;
    with image tokens, also the cameras' frames (B, V, K, 3, H, W)."""

    def __init__(self, config: VDMEncoderConfig):
        super().__init__()
        self.config = config
        self.backbone = build_backbone(config.backbone)
        config.check_feature_grids(self.backbone.feature_grid, self.backbone.size_multiple)
        channels = self.backbone.feature_channels
        self.image_encoder = SiglipImageEncoder(config.image_encoder_path) if config.image_encoder_path else None
        # The width of each image cell's features.
        self.view_channels = channels if self.image_encoder is None else self.image_encoder.channels
        self.spatial_former, self.motion_former, self.view_former = build_formers(config, channels, self.view_channels)
        # The motion energy's shape per motion clip shape (`_energy_of_still`).
        self._energy_shapes: dict[tuple[int, ...], torch.Size] = {}

    @property
    def device(self) -> torch.device:
        return next(self.spatial_former.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.spatial_former.parameters()).dtype

    def _resized(self, frames: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if frames.shape[-2:] == size:
            return frames
        return F.interpolate(frames.flatten(0, 1), size=size, mode="bilinear", align_corners=False).unflatten(
            0, frames.shape[:2]
        )

    def motion_clip(self, frames: torch.Tensor) -> torch.Tensor:
        """The motion stream's input: (B, T, 3, h, w) at the motion size, equalised."""
        cfg = self.config
        clip = self._resized(frames, (cfg.motion_height, cfg.motion_width))
        return equalise_brightness(clip) if cfg.equalise_brightness else clip

    def clip_features(self, frames: torch.Tensor) -> torch.Tensor:
        """The video model's features of the motion clip (B, T', C, h, w),
        unfiltered: what the streams filter, and what probes read."""
        return self._features(self.motion_clip(self._checked(frames))).float()

    def denoising_loss(self, frames: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Stage 1: the backbone's own objective on robot clips (motion
        stream input), to adapt the video model to the robot's scenes."""
        frames = self._checked(frames)
        clip = self.motion_clip(frames)
        with torch.no_grad():
            latents, context = self.backbone.encode(clip), self.backbone.context(clip)
        return self.backbone.denoising_loss(latents, generator, context)

    def _checked(self, frames: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        if frames.dim() != 5 or frames.shape[1] != cfg.num_frames or frames.shape[2] != 3:
            raise ValueError(f"expected frames (B, {cfg.num_frames}, 3, H, W), got {tuple(frames.shape)}")
        return self._resized(frames.to(self.device, self.dtype), (cfg.image_height, cfg.image_width))

    def forward(self, frames: torch.Tensor, views: torch.Tensor | None = None) -> SpatioMotionTokens:
        maps = self.refine(frames, views)
        spatial, motion, view_tokens = self.tokens(maps.spatial, maps.motion, maps.views)
        return SpatioMotionTokens(spatial, motion, maps.motion_energy, maps.boundary_map, maps.motion_map, view_tokens)

    def view_maps(self, views: torch.Tensor) -> torch.Tensor:
        """(B, V, K, 3, H, W) camera frames -> (B, V*K, C, gv, gv): the
        backbone's (or SigLIP's) features of each frame alone, unfiltered, pooled."""
        return self._pooled_views(self._view_features(views)[1])

    def _pooled_views(self, features: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(features.flatten(0, 1), self.config.view_grid).unflatten(0, features.shape[:2])

    def _view_features(self, views: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(the frames at the model's input size (B, V*K, 3, H, W), their
        features (B, V*K, C, h, w), unpooled)."""
        cfg = self.config
        expected = (cfg.view_cameras, cfg.view_history, 3)
        if views.dim() != 6 or tuple(views.shape[1:4]) != expected:
            raise ValueError(
                f"expected camera frames (B, {', '.join(map(str, expected))}, H, W) for the image "
                f"tokens, got {tuple(views.shape)}"
            )
        frames = self._resized(views.flatten(1, 2).to(self.device, self.dtype), (cfg.image_height, cfg.image_width))
        if self.image_encoder is not None:
            features = self.image_encoder(frames.flatten(0, 1)).float()
        else:
            features = self._features(frames.flatten(0, 1)[:, None])[:, -1].float()
        return frames, features.unflatten(0, frames.shape[:2])

    def _newest_features(
        self, frames: torch.Tensor, view_frames: torch.Tensor | None, view_features: torch.Tensor | None
    ) -> torch.Tensor:
        """The backbone's features of the newest frame (B, C, h, w), for the
        spatial stream: those the image tokens computed already when the
        video camera's newest image-token frame is that frame (the usual
        case), else a pass of their own."""
        newest = self.config.view_history - 1  # the video camera's (the first camera's) newest frame
        if (
            view_frames is not None
            and self.image_encoder is None
            and torch.equal(view_frames[:, newest], frames[:, -1])
        ):
            return view_features[:, newest]
        return self._features(frames[:, -1:])[:, -1].float()

    def _views_from_clip(self, frames: torch.Tensor) -> torch.Tensor:
        """Image tokens from the video camera alone can come from its clip,
        whose frames lie `motion_fps` apart; other cameras' cannot."""
        cfg = self.config
        if cfg.view_cameras != 1:
            raise ValueError(f"this System 2 makes image tokens from {cfg.view_cameras} cameras; no frames given")
        stamps = np.arange(frames.shape[1], dtype=np.int64) * int(round(1e9 / cfg.motion_fps))
        spec = ViewSpec.of(cfg)
        return frames[:, view_frame_indices(stamps, int(stamps[-1]), spec.history, spec.spacing_ns)][:, None]

    def refine(self, frames: torch.Tensor, views: torch.Tensor | None = None) -> RefinedMaps:
        """Backbone features of both streams through the fixed filters (and
        of the cameras' frames (B, V, K, 3, H, W) for the image tokens, when
        configured)."""
        cfg = self.config
        if cfg.view_cameras and views is None:
            views = self._views_from_clip(frames)
        frames = self._checked(frames)
        view_frames, view_features = self._view_features(views) if cfg.view_cameras else (None, None)
        view_maps = self._pooled_views(view_features) if cfg.view_cameras else None
        if cfg.stream_form == "paper":
            return self._paper_maps(frames, view_maps)
        backbone = self.backbone

        _, latent_fps = cfg.latent_frames_and_rate(backbone.temporal_compression)
        band = tuple(cfg.motion_band_hz)
        clip = self.motion_clip(frames)
        if cfg.filter_at == "latents":
            newest_latents = backbone.encode(frames[:, -1:])
            edge_latents = gradient_magnitude(newest_latents[:, 0].float(), cfg.spatial_filter)[:, None]
            newest = self._against_nothing(edge_latents.to(newest_latents.dtype), backbone.context(frames[:, -1:]))[
                :, -1
            ]
            edges = newest.abs()
            latents = backbone.encode(clip).float()
            moving = band_pass(latents, latent_fps, band)
            # Sensor noise passes the band too: latent cells under the noise
            # floor are silenced before the denoiser spreads them around; so
            # is the FFT round trip's rounding on a still clip.
            rms = moving.pow(2).mean(dim=1).sqrt()
            rounding = 1e-5 * latents.abs().amax(dim=(1, 2, 3, 4)).view(-1, 1, 1, 1)
            rms = torch.where(rms > rounding, rms, 0.0)
            gate = above_noise_floor(rms, cfg.noise_floor_quantile, cfg.noise_floor_factor) / rms.clamp_min(1e-12)
            moving = moving * gate[:, None]
            energy = self._against_nothing(moving.to(clip.dtype), backbone.context(clip)).pow(2).mean(dim=1).sqrt()
        else:
            newest = self._newest_features(frames, view_frames, view_features)
            edges = newest if cfg.spatial_filter == UNFILTERED else gradient_magnitude(newest, cfg.spatial_filter)
            batch = clip.shape[0]
            if cfg.motion_filter == UNFILTERED:
                energy = None
            elif cfg.cancel_frame_position_bias:
                energy = self._energy_of_still(clip)
                if energy is None:
                    both = self._features_and_still(clip).float()
                    energy = band_magnitude(both[:batch] - both[batch:], latent_fps, band)
                    self._energy_shapes[tuple(clip.shape)] = energy.shape
            else:
                energy = band_magnitude(self._features(clip).float(), latent_fps, band)
        if energy is None:
            motion = self._features(clip).float().mean(dim=1)
        else:
            motion = above_noise_floor(energy, cfg.noise_floor_quantile, cfg.noise_floor_factor)

        feature_scale = newest.pow(2).mean(dim=(1, 2, 3)).sqrt() + 1e-6
        boundary = edges.abs().mean(dim=1, keepdim=True)
        return RefinedMaps(
            spatial=F.adaptive_avg_pool2d(edges, cfg.spatial_grid),
            motion=F.adaptive_avg_pool2d(motion, cfg.motion_grid),
            motion_energy=motion.mean(dim=(1, 2, 3)) / feature_scale,
            boundary_map=boundary / (boundary.amax(dim=(2, 3), keepdim=True) + 1e-12),
            motion_map=motion.mean(dim=1, keepdim=True),
            views=view_maps,
        )

    def _paper_maps(self, frames: torch.Tensor, view_maps: torch.Tensor | None) -> RefinedMaps:
        """The official code's streams: Sobel magnitude of the newest frame's
        latents (zero padding, sqrt(gx^2 + gy^2 + 1e-6)) and the clip's
        latents band-passed along time (no window), each through the
        backbone; the signed features, pooled only where a grid is given.
        The display maps and the motion energy come from the filtered
        latents (the features of a still clip are those of zero latents,
        not zero)."""
        cfg, backbone = self.config, self.backbone
        newest_latents = backbone.encode(frames[:, -1:])
        edge_latents = gradient_magnitude(newest_latents[:, 0].float(), cfg.spatial_filter, "zeros", 1e-6)
        spatial = backbone.features(edge_latents[:, None].to(newest_latents.dtype), backbone.context(frames[:, -1:]))
        clip = self.motion_clip(frames)
        latents = backbone.encode(clip).float()
        _, latent_fps = cfg.latent_frames_and_rate(backbone.temporal_compression)
        moving = band_pass(latents, latent_fps, tuple(cfg.motion_band_hz), windowed=False)
        motion = backbone.features(moving.to(clip.dtype), backbone.context(clip)).float().transpose(1, 2)
        spatial = spatial[:, -1].float()  # (B, C, h, w)
        if cfg.spatial_grid is not None:
            spatial = F.adaptive_avg_pool2d(spatial, cfg.spatial_grid)
        if cfg.motion_grid is not None:
            motion = F.adaptive_avg_pool3d(motion, (motion.shape[2], cfg.motion_grid, cfg.motion_grid))
        boundary = edge_latents.mean(dim=1, keepdim=True)
        return RefinedMaps(
            spatial=spatial,
            motion=motion,
            motion_energy=moving.pow(2).mean(dim=(1, 2, 3, 4)).sqrt()
            / (latents.pow(2).mean(dim=(1, 2, 3, 4)).sqrt() + 1e-6),
            boundary_map=boundary / (boundary.amax(dim=(2, 3), keepdim=True) + 1e-12),
            motion_map=moving.pow(2).mean(dim=(1, 2)).sqrt()[:, None],
            views=view_maps,
        )

    def _features(self, frames: torch.Tensor) -> torch.Tensor:
        """The backbone's features of frames (B, T, 3, H, W), conditioned as the backbone conditions them."""
        return self.backbone.features(self.backbone.encode(frames), self.backbone.context(frames))

    def _energy_of_still(self, clip: torch.Tensor) -> torch.Tensor | None:
        """Zero for a clip standing still (the first pass after a reset: one
        frame, repeated), which is its own still copy, so that its features
        cancel exactly, without the pass; once a pass has shown the energy's
        shape for clips of this shape. None for any other clip."""
        shape = self._energy_shapes.get(tuple(clip.shape))
        if shape is None or not torch.equal(clip, clip[:, -1:].expand_as(clip)):
            return None
        return clip.new_zeros(shape, dtype=torch.float32)

    def _features_and_still(self, clip: torch.Tensor) -> torch.Tensor:
        """The features of `clip` and, after them in the batch, of the clip
        its newest frame makes standing still. A per-frame VAE (SVD's)
        encodes that still clip as the newest frame's latents repeated: they
        are taken from the clip's own, and the VAE runs on half the frames."""
        backbone = self.backbone
        latents = backbone.encode(clip)
        if backbone.temporal_compression == 1:
            still = latents[:, -1:].expand_as(latents)
        else:
            still = backbone.encode(clip[:, -1:].expand_as(clip))
        contexts = [backbone.context(clip), backbone.context(clip[:, -1:])]  # a clip's context is its first frame's
        context = None if contexts[0] is None else torch.cat(contexts)
        return backbone.features(torch.cat([latents, still]), context)

    def _against_nothing(self, latents: torch.Tensor, context: torch.Tensor | None) -> torch.Tensor:
        """Features of filtered latents minus those of all-zero latents (in
        one batch, under the same conditioning): zero where the filter left
        nothing, whatever biases the denoiser adds."""
        both_contexts = None if context is None else torch.cat([context, context])
        both = self.backbone.features(torch.cat([latents, torch.zeros_like(latents)]), both_contexts).float()
        return both[: len(latents)] - both[len(latents) :]

    def tokens(
        self, spatial_maps: torch.Tensor, motion_maps: torch.Tensor, view_maps: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Pooled maps -> (B, gs*gs, token_dim) spatial, (B, gm*gm, token_dim)
        motion and, with image tokens, (B, V*K*gv*gv, token_dim) image tokens
        (the cells' C channels without a view former)."""
        views = None
        if view_maps is not None and self.view_former is not None:
            views = self.view_former(view_maps)
        elif view_maps is not None and self.config.view_cameras:
            # Without a former, each cell's features, camera-major: (B, V*K*g*g, C).
            views = view_maps.float().flatten(3).transpose(2, 3).flatten(1, 2)
        return self.spatial_former(spatial_maps), self.motion_former(motion_maps), views

    def freeze_in(self, dtype: torch.dtype) -> SpatioMotionEncoder:
        """The frozen pretrained models (the video model, SigLIP) in `dtype`:
        training's recipe caches their maps so and the nodes run them so.
        The formers were trained in float32 and are small: they stay, and
        so does what the video model keeps in float32 (`cast_frozen`), so a
        bf16 node computes the maps training cached."""
        self.backbone.cast_frozen(dtype)
        if self.image_encoder is not None:
            self.image_encoder.to(dtype)
        return self

    def fit_scales(self, spatial_maps: torch.Tensor, motion_maps: torch.Tensor) -> None:
        """The energy form's fixed scales from a dataset's cached maps (the
        paper form's formers normalise each token themselves)."""
        if self.config.stream_form == "energy":
            self.spatial_former.fit_scale(spatial_maps)
            self.motion_former.fit_scale(motion_maps)

    def head_state_dict(self) -> dict[str, torch.Tensor]:
        """Weights that are not part of the backbone's diffusers models."""
        saved_apart = tuple(f"backbone.{name}." for name in self.backbone.diffusers_modules())
        return {k: v for k, v in self.state_dict().items() if not k.startswith(saved_apart)}
