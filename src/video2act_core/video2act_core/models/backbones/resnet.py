"""A small ResNet image encoder trained from scratch: the vision backbone of
the Diffusion Policy baseline (DP uses a ResNet-18 with GroupNorm in place
of BatchNorm, trained end to end with its action head).

It is not a video model: `encode` passes pixels through, `features` runs
each frame on its own, and it has no denoising objective (no stage 1).
Its weights are trained with System 1 (`trained_end_to_end`) and saved
with System 2's head weights, not as a diffusers directory.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from video2act_core.models.backbones import VideoBackbone


class ResidualBlock(nn.Module):
    def __init__(self, channels_in: int, channels_out: int, stride: int, groups: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels_in, channels_out, 3, stride, 1, bias=False),
            nn.GroupNorm(groups, channels_out),
            nn.ReLU(),
            nn.Conv2d(channels_out, channels_out, 3, 1, 1, bias=False),
            nn.GroupNorm(groups, channels_out),
        )
        self.skip = (
            nn.Identity()
            if stride == 1 and channels_in == channels_out
            else nn.Sequential(
                nn.Conv2d(channels_in, channels_out, 1, stride, bias=False), nn.GroupNorm(groups, channels_out)
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.skip(x))


class ResNetBackbone(VideoBackbone):
    temporal_compression = 1
    trained_end_to_end = True

    def __init__(
        self,
        widths: tuple[int, ...] = (32, 64, 128),
        blocks_per_stage: int = 1,
        groups: int = 8,
        pretrained_path: str = "",
    ):
        super().__init__()
        self.check_arguments(
            {
                "widths": widths,
                "blocks_per_stage": blocks_per_stage,
                "groups": groups,
                "pretrained_path": pretrained_path,
            }
        )
        widths = self.widths = list(widths)
        # The stem halves the input; every later stage but the first halves it again.
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[0], 3, 2, 1, bias=False), nn.GroupNorm(groups, widths[0]), nn.ReLU()
        )
        stages, channels = [], widths[0]
        for index, width in enumerate(widths):
            for block in range(blocks_per_stage):
                stride = 2 if index > 0 and block == 0 else 1
                stages.append(ResidualBlock(channels, width, stride, groups))
                channels = width
        self.stages = nn.Sequential(*stages)
        self.feature_channels = channels

    @classmethod
    def check_arguments(cls, arguments: dict[str, Any]) -> None:
        if arguments["pretrained_path"]:
            raise ValueError(
                f"backbone.pretrained_path={arguments['pretrained_path']!r}: expected none; the ResNet "
                "baseline is trained from scratch (its weights are saved with the checkpoint's System 2 "
                "head)"
            )
        for name in ("blocks_per_stage", "groups"):
            if arguments[name] < 1:
                raise ValueError(f"backbone.{name}={arguments[name]!r}: expected >= 1")
        widths, groups = arguments["widths"], arguments["groups"]
        if not widths or any(width < 1 or width % groups for width in widths):
            # GroupNorm splits each stage's channels into `groups` equal groups.
            raise ValueError(
                f"backbone.widths={list(widths)!r}: expected one or more stage widths, each a "
                f"multiple of groups={groups}"
            )

    def feature_grid(self, height: int, width: int) -> tuple[int, int]:
        """The stem and every stage after the first halve a side, rounding up
        (3x3 convolutions, padding 1, stride 2)."""
        for _ in range(len(self.widths)):
            height, width = -(-height // 2), -(-width // 2)
        return height, width

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """Pixels in [-1, 1]: the ResNet's input is the image itself."""
        return frames * 2.0 - 1.0

    def features(self, latents: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        batch, steps = latents.shape[:2]
        return self.stages(self.stem(latents.flatten(0, 1))).unflatten(0, (batch, steps))

    def denoising_loss(
        self, latents: torch.Tensor, generator: torch.Generator | None = None, context: torch.Tensor | None = None
    ) -> torch.Tensor:
        raise ValueError("stage 1 adapts a video diffusion model; the ResNet baseline has none (use --stage1-steps 0)")

    def diffusers_modules(self) -> dict[str, nn.Module]:
        return {}
