"""The device memory of a training step at a model config's sizes, for
stage 1 and stage 2, planned without weights or a GPU:

    python -m video2act_core.training.plan --model-config config/model_wan2.2_ti2v_5b.yaml

Every module is counted on the meta device; what stage 2 does not run on
cached features (`stage2.idle_in_stage2`) waits on the host. One step of
what trains (the formers and System 1's head: weights, gradients, AdamW's
moments, the EMA, the activations at --batch-size, in float32 as training
runs) is run on fake tensors under torch's MemTracker, which records what
each tensor would occupy. Stage 1's step is the video model's denoising
loss on the latents of --batch-size / 16 clips (the VAE's encoding, without
gradients, comes before and is not tracked), in the precision and with the
adapters of the config's `training` recipe. Downloads need not be here: a model the config names by a path
that does not exist is built from the published architecture of the
release it names (RELEASES), by directory name.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from video2act_core.models.conditions import Instruction
from video2act_core.models.dit import ActionDiffusion
from video2act_core.models.factory import system1_config
from video2act_core.models.text import text_encoder_arguments
from video2act_core.models.vdm_encoder import VDMEncoderConfig, build_formers
from video2act_core.training.recipe import TrainingRecipe
from video2act_core.training.stage1 import CLIPS_PER_BATCH

GIB = 2**30


def size(bytes_: float) -> str:
    return f"{bytes_ / GIB:.2f} GiB" if bytes_ >= GIB / 10 else f"{bytes_ / 2**20:.1f} MiB"


def count(parameters: int) -> str:
    return f"{parameters / 1e9:.2f} B" if parameters >= 1e8 else f"{parameters / 1e6:.2f} M"


# The published architectures of the downloads the full-size configs name.
T5_XXL = {"d_model": 4096, "d_ff": 10240, "num_layers": 24, "num_heads": 64, "d_kv": 64}
RELEASES = {
    "t5-v1_1-xxl": ("T5EncoderModel", "T5Config", {**T5_XXL, "vocab_size": 32128, "feed_forward_proj": "gated-gelu"}),
    # The umT5-XXL encoder of the Wan2.2 download (its text_encoder/).
    "Wan2.2-TI2V-5B-Diffusers": (
        "UMT5EncoderModel",
        "UMT5Config",
        {**T5_XXL, "vocab_size": 256384, "feed_forward_proj": "gated-gelu"},
    ),
    "siglip-so400m-patch14-384": (
        "SiglipVisionModel",
        "SiglipVisionConfig",
        {
            "hidden_size": 1152,
            "intermediate_size": 4304,
            "num_hidden_layers": 27,
            "num_attention_heads": 16,
            "image_size": 384,
            "patch_size": 14,
        },
    ),
}


def transformers_model(path: str) -> nn.Module:
    """A text or image encoder on the meta device: from the download's
    config where it is here, else from the release's architecture."""
    import transformers

    with torch.device("meta"):
        if Path(path).exists():
            config = transformers.AutoConfig.from_pretrained(path, local_files_only=True)
            return transformers.AutoModel.from_config(config)
        name = Path(path).name
        if name not in RELEASES:
            raise SystemExit(f"{path} is not here and the plan does not know the release {name!r} ({sorted(RELEASES)})")
        model, config, values = RELEASES[name]
        return getattr(transformers, model)(getattr(transformers, config)(**values))


def video_model(backbone: dict[str, Any]) -> tuple[list[tuple[str, nn.Module]], int]:
    """The video model's modules on the meta device and its feature width."""
    path = backbone.get("pretrained_path", "")
    if backbone.get("type") == "wan" and path and not Path(path).exists():
        from diffusers import AutoencoderKLWan, WanTransformer3DModel

        from video2act_core.models.backbones.wan_original import WAN22_TI2V_5B_TRANSFORMER, WAN22_VAE

        with torch.device("meta"):
            transformer = WanTransformer3DModel(**WAN22_TI2V_5B_TRANSFORMER)
            vae = AutoencoderKLWan(**WAN22_VAE)
        modules = [("Wan2.2-TI2V-5B transformer", transformer), ("Wan2.2 VAE", vae)]
        if backbone.get("text_encoder_path"):
            modules.append(("umT5-XXL encoder (Wan's context)", transformers_model(backbone["text_encoder_path"])))
        config = transformer.config
        return modules, config.num_attention_heads * config.attention_head_dim
    if path and not Path(path).exists():
        raise SystemExit(f"{path} is not here; the plan knows the Wan2.2 release only")
    from video2act_core.models.backbones import build_backbone

    built = build_backbone(backbone)  # a download here, or a tiny model: small enough to build
    return [(f"{backbone.get('type', 'svd')} video model", built)], built.feature_channels


class PlannedLoRA(nn.Module):
    """What peft's LoRA adds to a Linear, laid out as peft lays it out
    (A: rank x in, B: out x rank, float32, the input cast to them). Built
    by hand for the plan alone: peft cannot move its adapters to the base
    layer's device under FakeTensorMode."""

    def __init__(self, base: nn.Linear, rank: int):
        super().__init__()
        self.base = base
        self.lora_A = nn.Linear(base.in_features, rank, bias=False, dtype=torch.float32)
        self.lora_B = nn.Linear(rank, base.out_features, bias=False, dtype=torch.float32)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.lora_B(self.lora_A(x.to(self.lora_A.weight.dtype))).to(x.dtype)


def planned_adapters(denoiser: nn.Module, recipe: TrainingRecipe) -> list[nn.Parameter]:
    """Puts a PlannedLoRA on every Linear the recipe's targets name."""
    import re

    targets = [
        name
        for name, module in denoiser.named_modules()
        if isinstance(module, nn.Linear) and re.fullmatch(recipe.lora_targets, name)
    ]
    adapters = []
    for name in targets:
        parent_name, _, leaf = name.rpartition(".")
        parent = denoiser.get_submodule(parent_name)
        planned = PlannedLoRA(getattr(parent, leaf), recipe.lora_rank)
        setattr(parent, leaf, planned)
        adapters += [planned.lora_A.weight, planned.lora_B.weight]
    return adapters


def fake_backbone(backbone: dict[str, Any]) -> nn.Module:
    """System 2's video model on fake tensors: a Wan2.2 release not here
    built from its published configs (its text context zeros of umT5's
    shape: umT5 itself runs on the host, once per instruction)."""
    from video2act_core.models.backbones import build_backbone

    path = backbone.get("pretrained_path", "")
    if backbone.get("type") == "wan" and path and not Path(path).exists():
        from video2act_core.models.backbones.wan_original import WAN22_TI2V_5B_TRANSFORMER, WAN22_VAE

        absent = {"pretrained_path": "", "text_encoder_path": "", "instruction_context": False}
        backbone = {**backbone, **absent, "transformer": WAN22_TI2V_5B_TRANSFORMER, "vae": WAN22_VAE}
    return build_backbone(backbone)


class _NoHook:
    def remove(self) -> None:
        pass


def skip_frozen_gradient_hooks(tracker, module: nn.Module) -> None:
    """torch 2.13's MemTracker hooks the gradient of every parameter of each
    module it enters and fails on a frozen one; marked as hooked already,
    frozen parameters are still counted, and not hooked."""
    for parameter in module.parameters():
        if not parameter.requires_grad:
            tracker._param_to_grad_hook_handles[parameter] = (_NoHook(), _NoHook())


def stage1_step(vdm: VDMEncoderConfig, recipe: TrainingRecipe, clips: int) -> tuple[dict[str, int], int]:
    """MemTracker's peak (bytes by kind) of one stage 1 step on fake
    tensors, and the parameters it trains."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.distributed._tools.mem_tracker import MemTracker

    from video2act_core.training.stage1 import LEARNING_RATE

    with FakeTensorMode(allow_non_fake_inputs=True):
        backbone = fake_backbone(vdm.backbone)
        if recipe.stage1_adapter == "lora":
            backbone.requires_grad_(False)
            trained = planned_adapters(backbone.denoiser(), recipe)
            backbone.cast_frozen(recipe.dtype)
            for adapter in trained:
                adapter.data = adapter.data.float()
        else:
            trained = list(backbone.parameters())
        optimizer = torch.optim.AdamW(trained, lr=LEARNING_RATE)
        tracker = MemTracker()
        tracker.track_external(backbone, optimizer)
        skip_frozen_gradient_hooks(tracker, backbone)
        clip = torch.empty(clips, vdm.num_frames, 3, vdm.motion_height, vdm.motion_width)
        # Encoded before the step is tracked: MemTracker cannot follow Wan's
        # VAE (its encoder runs once per chunk of frames), and what the
        # encoding holds without gradients is gone before the step runs.
        with recipe.autocast(torch.device("cpu")), torch.no_grad():
            latents, context = backbone.encode(clip), backbone.context(clip)
        with tracker:
            for _ in range(2):  # the second step holds AdamW's moments throughout
                tracker.reset_mod_stats()
                with recipe.autocast(torch.device("cpu")):
                    loss = backbone.denoising_loss(latents, None, context)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
        peak = next(iter(tracker.get_tracker_snapshot("peak").values()))
    return {str(kind.value if hasattr(kind, "value") else kind): value for kind, value in peak.items()}, sum(
        p.numel() for p in trained
    )


def stream_maps(
    vdm: VDMEncoderConfig, channels: int, batch: int, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fake spatial and motion maps as the feature cache holds them."""
    if vdm.stream_form == "paper" and vdm.backbone.get("type") == "wan":
        from video2act_core.models.backbones.wan import WanBackbone, feature_cell
        from video2act_core.models.backbones.wan_original import WAN22_TI2V_5B_TRANSFORMER, WAN22_VAE

        cell_h, cell_w = feature_cell(WAN22_TI2V_5B_TRANSFORMER, WAN22_VAE)
        frames = (vdm.num_frames - 1) // WanBackbone.temporal_compression + 1
        spatial = (batch, channels, vdm.image_height // cell_h, vdm.image_width // cell_w)
        motion = (batch, channels, frames, vdm.motion_height // cell_h, vdm.motion_width // cell_w)
        return torch.empty(spatial, dtype=dtype), torch.empty(motion, dtype=dtype)
    if vdm.stream_form == "paper":
        raise SystemExit("the plan knows the paper form's map sizes for Wan2.2 only")
    return torch.empty(batch, channels, vdm.spatial_grid, vdm.spatial_grid, dtype=dtype), torch.empty(
        batch, channels, vdm.motion_grid, vdm.motion_grid, dtype=dtype
    )


def stage2_step(
    vdm: VDMEncoderConfig,
    system1: dict,
    joints: int,
    channels: int,
    view_channels: int,
    batch: int,
    recipe: TrainingRecipe,
):
    """MemTracker's peak (bytes by kind) of one stage 2 step on fake tensors."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.distributed._tools.mem_tracker import MemTracker

    from video2act_core.training.ema import WeightAverage
    from video2act_core.training.stage2 import WEIGHT_DECAY, optimizer_step

    language = system1.get("language") or {}
    words_dim, tokens = 0, text_encoder_arguments(language)[1]["max_tokens"] if language else 0
    if language.get("type") == "pretrained":
        # Its words are cached (Instruction.words): a learned stand-in of its width builds the head.
        words_dim = transformers_model(language["path"]).config.d_model
        system1 = {**system1, "language": {"type": "learned", "vocab_size": 2, "max_tokens": tokens, "dim": words_dim}}
    names = [f"joint{i}" for i in range(joints)]
    with FakeTensorMode(allow_non_fake_inputs=True):
        config = system1_config(system1, vdm, names, view_channels)
        action = ActionDiffusion(config)
        formers = nn.ModuleList(f for f in build_formers(vdm, channels, view_channels) if f is not None)
        trainable = list(formers.parameters()) + list(action.model.parameters())
        optimizer = torch.optim.AdamW(trainable, weight_decay=WEIGHT_DECAY)
        average = WeightAverage(trainable, config.ema_power, config.ema_max_decay) if config.ema else None
        tracker = MemTracker()
        tracker.track_external(action, formers, optimizer)
        spatial_maps, motion_maps = stream_maps(vdm, channels, batch, recipe.dtype)
        view_maps = None
        if vdm.view_cameras:
            view_maps = torch.empty(
                batch,
                vdm.view_cameras * vdm.view_history,
                view_channels,
                vdm.view_grid,
                vdm.view_grid,
                dtype=recipe.dtype,
            )
        instruction = None
        if language:
            ids, mask = torch.zeros(batch, tokens, dtype=torch.long), torch.ones(batch, tokens, dtype=torch.bool)
            instruction = Instruction(ids, mask, torch.empty(batch, tokens, words_dim) if words_dim else None)
        with tracker:
            for _ in range(2):  # the second step holds AdamW's moments throughout, as every later one
                tracker.reset_mod_stats()
                with recipe.autocast(torch.device("cpu")):
                    spatial, motion = formers[0](spatial_maps), formers[1](motion_maps)
                    views = None
                    if view_maps is not None:  # through the view former, or each cell as it is
                        views = (
                            formers[2](view_maps)
                            if len(formers) == 3
                            else view_maps.flatten(3).transpose(2, 3).flatten(1, 2)
                        )
                    actions, state = torch.empty(batch, config.horizon, joints), torch.empty(batch, joints)
                    loss = action.loss(actions, state, spatial, motion, instruction, views)
                optimizer_step(loss, trainable, optimizer, average)
        peak = next(iter(tracker.get_tracker_snapshot("peak").values()))
        ema_bytes = sum(a.numel() * a.element_size() for a in average.average) if average is not None else 0
        trained = sum(p.numel() for p in trainable)
    return (
        {str(kind.value if hasattr(kind, "value") else kind): value for kind, value in peak.items()},
        ema_bytes,
        trained,
    )


KINDS = ("Parameter", "Gradient", "Optstate", "Activation", "Temp", "Buffer", "Other")


@dataclass
class Plan:
    batch: int
    recipe: TrainingRecipe
    idle: list[tuple[str, int]]  # (module, parameters) waiting on the host in stage 2
    peak: dict[str, int]  # stage 2: MemTracker's peak bytes by kind, and 'Total'
    ema_bytes: int
    trained: int  # stage 2's trained parameters
    stage1_peak: dict[str, int] | None = None  # stage 1's, where the video model has one
    stage1_trained: int = 0

    @property
    def total_bytes(self) -> int:
        return self.peak["Total"] + self.ema_bytes

    @staticmethod
    def _kinds(peak: dict[str, int]) -> list[str]:
        return [f"  {kind.lower()}: {size(peak[kind])}" for kind in KINDS if peak.get(kind)]

    def __str__(self) -> str:
        recipe = self.recipe
        lines = []
        if self.stage1_peak is not None:
            what = f"LoRA rank {recipe.lora_rank} on" if recipe.stage1_adapter == "lora" else "all of"
            lines.append(
                f"stage 1 at {max(1, self.batch // CLIPS_PER_BATCH)} clip(s), {recipe.precision}: "
                f"{what} the video model, {count(self.stage1_trained)} trained parameters (MemTracker's peak):"
            )
            lines += self._kinds(self.stage1_peak) + [f"  total: {size(self.stage1_peak['Total'])}"]
        lines.append(
            f"stage 2 at batch {self.batch}, {recipe.precision}: the device holds what trains; on the host wait"
        )
        lines += [
            f"  {name}: {count(parameters)} parameters ({size(parameters * 4)} in float32)"
            for name, parameters in self.idle
        ]
        lines.append(f"the step on the device (MemTracker's peak), {count(self.trained)} trained parameters:")
        lines += self._kinds(self.peak)
        # The EMA's copies are made outside the tracked modules: counted on top.
        if self.ema_bytes:
            lines.append(f"  EMA copy: {size(self.ema_bytes)}")
        lines.append(f"  total: {size(self.total_bytes)}")
        return "\n".join(lines)


def plan(model_config: dict[str, Any], joints: int, batch: int, stage1: bool = True) -> Plan:
    """Stage 1's step on the device (`stage1`, for a video model with a
    denoising objective), what stage 2 leaves idle on the host, and its step."""
    vdm = VDMEncoderConfig.from_dict(model_config["system2"])
    recipe = TrainingRecipe.from_model_config(model_config)
    system1 = model_config.get("system1", {})
    idle, channels = video_model(vdm.backbone)
    view_channels = channels
    if vdm.image_encoder_path:
        image_encoder = transformers_model(vdm.image_encoder_path)
        idle.append(("SigLIP image encoder", image_encoder))
        view_channels = image_encoder.config.hidden_size
    language = system1.get("language") or {}
    if language.get("type") == "pretrained":
        idle.append((f"{Path(language['path']).name} text encoder", transformers_model(language["path"])))
    peak, ema_bytes, trained = stage2_step(vdm, system1, joints, channels, view_channels, batch, recipe)
    idle_counts = [(name, sum(p.numel() for p in module.parameters())) for name, module in idle]
    planned = Plan(batch, recipe, idle_counts, peak, ema_bytes, trained)
    if stage1 and vdm.backbone.get("type") != "resnet":  # resnet: trained end to end, in stage 2
        planned.stage1_peak, planned.stage1_trained = stage1_step(vdm, recipe, max(1, batch // CLIPS_PER_BATCH))
    return planned


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-config", type=Path, required=True)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--joints", type=int, default=6)
    args = parser.parse_args(argv)
    print(plan(yaml.safe_load(args.model_config.read_text()), args.joints, args.batch_size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
