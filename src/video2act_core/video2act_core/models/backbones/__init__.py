"""Video diffusion backbones read as feature extractors: one module per
model, all behind `VideoBackbone`, built by `build_backbone` from the
`backbone` section of System 2's config (`type` picks the module).

System 2 calls a backbone twice per update: the spatial stream is one
frame, the motion stream a clip. Either way a clip goes in and per-frame
feature maps come out; the filters and formers after it do not know which
model made them.
"""

from __future__ import annotations

import inspect
import typing
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from video2act_core.models.config import type_error

# The flow-matching transformers (Wan, HunyuanVideo) map a noise level s in
# [0, 1] to their timestep s * 1000; their stage-1 loss draws s uniformly or
# logit-normally (more weight on mid-range noise, as SD3 trains).
NUM_TRAIN_TIMESTEPS = 1000
TIMESTEP_SAMPLINGS = ("uniform", "logit_normal")
BACKBONE_TYPES = ("svd", "wan", "hunyuan", "resnet")


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
    - `check_arguments(arguments)`: the constructor's arguments checked
      without building anything (`backbone_arguments` calls it on a config's
      `backbone` section, the constructor on its own).
    - `size_multiple`, `feature_grid(height, width)`: frame sizes must be
      multiples of the first; the second is the (h', w') grid of the
      feature maps of such a frame (None where it cannot be told without a
      forward pass), for System 2 to check that its pooling grids fit.
    - `conditions_on_instruction`, `set_instructions(texts)`: a backbone
      conditioned on the task instruction (Wan with `instruction_context`)
      takes the instruction of each clip of the next batches ("": none).
    """

    feature_channels: int
    temporal_compression: int
    trained_end_to_end = False
    size_multiple = 1
    conditions_on_instruction = False

    def set_instructions(self, texts: list[str]) -> None:
        """Ignored by backbones that do not condition on the instruction."""

    @classmethod
    def check_arguments(cls, arguments: dict[str, Any]) -> None:
        """ValueError naming `backbone.<argument>`, its value and what is expected."""

    def feature_grid(self, height: int, width: int) -> tuple[int, int] | None:
        return None

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def context(self, frames: torch.Tensor) -> torch.Tensor | None:
        return None

    def features(self, latents: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        raise NotImplementedError

    def denoising_loss(
        self, latents: torch.Tensor, generator: torch.Generator | None = None, context: torch.Tensor | None = None
    ) -> torch.Tensor:
        raise NotImplementedError

    def diffusers_modules(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def save(self, directory) -> None:
        for name, module in self.diffusers_modules().items():
            module.save_pretrained(Path(directory) / name, safe_serialization=True)

    def denoiser(self) -> nn.Module:
        """The model `denoising_loss` trains (stage 1's LoRA adapters go in it)."""
        modules = self.diffusers_modules()
        return modules.get("transformer", modules.get("unet"))

    def cast_frozen(self, dtype: torch.dtype) -> None:
        """The pretrained models in `dtype` (a frozen video model in bf16),
        as diffusers loads them in it: what a model keeps in float32
        (`_keep_in_fp32_modules`: Wan's rotary table, time embedding and
        norms) stays, and so do this module's own buffers (the VAE's latent
        statistics). A plain `.to(dtype)` casts those too."""
        for module in self.diffusers_modules().values():
            cast_keeping_float32(module, dtype)


def cast_keeping_float32(module: nn.Module, dtype: torch.dtype) -> None:
    """Casts `module`'s floating-point weights and buffers to `dtype` in
    place, except those under a name in its `_keep_in_fp32_modules`."""
    kept = getattr(module, "_keep_in_fp32_modules", None) or []
    for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        if tensor.is_floating_point():
            tensor.data = tensor.data.to(torch.float32 if set(name.split(".")) & set(kept) else dtype)


def check_flow_options(arguments: dict[str, Any]) -> None:
    """The options Wan and HunyuanVideo share: the feature pass's timestep,
    the stage-1 noise-level sampling and how many blocks run."""
    timestep, sampling = arguments["timestep"], arguments["loss_timestep_sampling"]
    if not 0.0 <= timestep <= NUM_TRAIN_TIMESTEPS:
        raise ValueError(f"backbone.timestep={timestep!r}: expected 0..{NUM_TRAIN_TIMESTEPS}")
    if sampling not in TIMESTEP_SAMPLINGS:
        raise ValueError(f"backbone.loss_timestep_sampling={sampling!r}: expected one of {TIMESTEP_SAMPLINGS}")
    if arguments["num_blocks"] < 0:
        raise ValueError(f"backbone.num_blocks={arguments['num_blocks']!r}: expected >= 0 (0 = all blocks)")


def transformer_and_vae(
    model: str, transformer_class, vae_class, pretrained_path: str, transformer: dict[str, Any], vae: dict[str, Any]
) -> tuple[nn.Module, nn.Module]:
    """A video transformer and its VAE: loaded from a local diffusers
    directory (transformer/ and vae/ inside), or built from configs."""
    if not pretrained_path:
        return transformer_class(**transformer), vae_class(**vae)
    root = Path(pretrained_path).expanduser()
    if not (root / "transformer").is_dir() or not (root / "vae").is_dir():
        raise FileNotFoundError(
            f"{root} is not a diffusers {model} directory: expected transformer/ and vae/ subfolders"
        )
    return load_local(transformer_class, root / "transformer"), load_local(vae_class, root / "vae")


def flow_noise_levels(batch: int, sampling: str, generator: torch.Generator | None) -> torch.Tensor:
    """(batch,) noise levels in (0, 1) for a flow-matching loss."""
    if sampling == "logit_normal":
        return torch.sigmoid(torch.randn(batch, generator=generator))
    return torch.rand(batch, generator=generator)


def load_local(model_class, directory: Path):
    """A diffusers model saved in `directory` (save_pretrained layout), in
    float32 whatever the files hold: its safetensors read into a model built
    from the saved config. Not `from_pretrained`: with `accelerate`
    installed (peft brings it) that builds the model on the meta device
    first, and Wan's rotary tables then come out other than the model that
    was saved computes them (features differing in the 5th digit).
    A lower precision is cast afterwards (`VideoBackbone.cast_frozen`).
    """
    weight_files = sorted(directory.glob("diffusion_pytorch_model*.safetensors"))
    if not weight_files:
        raise FileNotFoundError(f"{directory} holds no diffusion_pytorch_model*.safetensors weights")
    model = model_class.from_config(model_class.load_config(directory))
    state_dict = {}
    for weight_file in weight_files:
        state_dict.update(load_file(weight_file))
    model.load_state_dict(state_dict)
    return model.eval()


# Options naming where a backbone's weights come from; a checkpoint that
# holds the weights itself clears them.
WEIGHT_SOURCES = ("pretrained_path", "original_transformer", "original_vae")


def backbone_class(kind: str) -> type[VideoBackbone]:
    """The backbone module `kind` names (imported here: its heavy library is
    imported only when a backbone is built)."""
    if kind == "svd":
        from video2act_core.models.backbones.svd import SVDBackbone

        return SVDBackbone
    if kind == "wan":
        from video2act_core.models.backbones.wan import WanBackbone

        return WanBackbone
    if kind == "hunyuan":
        from video2act_core.models.backbones.hunyuan import HunyuanVideoBackbone

        return HunyuanVideoBackbone
    if kind == "resnet":
        from video2act_core.models.backbones.resnet import ResNetBackbone

        return ResNetBackbone
    raise ValueError(f"backbone.type={kind!r}: expected one of {BACKBONE_TYPES}")


def backbone_arguments(options: dict[str, Any]) -> tuple[type[VideoBackbone], dict[str, Any]]:
    """The class options['type'] names (default svd) and every argument of
    its constructor (the options over its defaults), checked without
    building anything: an unknown type or option, a value of the wrong type
    or one the backbone would refuse is a ValueError naming `backbone.<key>`."""
    if not isinstance(options, dict):
        raise ValueError(f"backbone={options!r}: expected a mapping with a type, one of {BACKBONE_TYPES}")
    options = dict(options)
    kind = options.pop("type", "svd")
    cls = backbone_class(kind)
    signature = inspect.signature(cls.__init__)
    hints = typing.get_type_hints(cls.__init__)
    accepted = [name for name in signature.parameters if name != "self"]
    for name, value in options.items():
        if name not in accepted:
            raise ValueError(f"backbone.{name}={value!r}: expected one of the {kind} backbone's options {accepted}")
        expected = type_error(value, hints.get(name, Any))
        if expected is not None:
            raise ValueError(f"backbone.{name}={value!r}: expected {expected}")
    bound = signature.bind(None, **options)
    bound.apply_defaults()
    arguments = {name: value for name, value in bound.arguments.items() if name != "self"}
    cls.check_arguments(arguments)
    return cls, arguments


def build_backbone(options: dict[str, Any]) -> VideoBackbone:
    """The backbone named by options['type'] ('svd', 'wan', 'hunyuan' or 'resnet'),
    built from the rest of `options` (a local `pretrained_path`, or configs)."""
    cls, arguments = backbone_arguments(options)
    return cls(**arguments)
