"""The device memory of a stage 2 training step at a model config's sizes,
planned without weights or a GPU:

    python -m video2act_core.training.plan --model-config config/model_wan2.2_ti2v_5b.yaml

Every module is counted on the meta device; what stage 2 does not run on
cached features (`stage2.idle_in_stage2`) waits on the host. One step of
what trains (the formers and System 1's head: weights, gradients, AdamW's
moments, the EMA, the activations at --batch-size, in float32 as training
runs) is run on fake tensors under torch's MemTracker, which records what
each tensor would occupy. Downloads need not be here: a model the config
names by a path that does not exist is built from the published
architecture of the release it names (RELEASES), by directory name.
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


def stream_maps(vdm: VDMEncoderConfig, channels: int, batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Fake spatial and motion maps as the feature cache holds them."""
    if vdm.stream_form == "paper" and vdm.backbone.get("type") == "wan":
        cell = 32  # Wan2.2's VAE (16x) and patches (2x2)
        frames = (vdm.num_frames - 1) // 4 + 1
        spatial = (batch, channels, vdm.image_height // cell, vdm.image_width // cell)
        motion = (batch, channels, frames, vdm.motion_height // cell, vdm.motion_width // cell)
        return torch.empty(spatial), torch.empty(motion)
    if vdm.stream_form == "paper":
        raise SystemExit("the plan knows the paper form's map sizes for Wan2.2 only")
    return torch.empty(batch, channels, vdm.spatial_grid, vdm.spatial_grid), torch.empty(
        batch, channels, vdm.motion_grid, vdm.motion_grid
    )


def stage2_step(vdm: VDMEncoderConfig, system1: dict, joints: int, channels: int, view_channels: int, batch: int):
    """MemTracker's peak (bytes by kind) of one stage 2 step on fake tensors."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.distributed._tools.mem_tracker import MemTracker

    from video2act_core.training.ema import WeightAverage
    from video2act_core.training.stage2 import MAX_GRAD_NORM, WEIGHT_DECAY

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
        spatial_maps, motion_maps = stream_maps(vdm, channels, batch)
        view_maps = None
        if vdm.view_cameras:
            view_maps = torch.empty(
                batch, vdm.view_cameras * vdm.view_history, view_channels, vdm.view_grid, vdm.view_grid
            )
        instruction = None
        if language:
            ids, mask = torch.zeros(batch, tokens, dtype=torch.long), torch.ones(batch, tokens, dtype=torch.bool)
            instruction = Instruction(ids, mask, torch.empty(batch, tokens, words_dim) if words_dim else None)
        with tracker:
            for _ in range(2):  # the second step holds AdamW's moments throughout, as every later one
                tracker.reset_mod_stats()
                spatial, motion = formers[0](spatial_maps), formers[1](motion_maps)
                views = None
                if view_maps is not None:  # through the view former, or each cell as it is
                    views = (
                        formers[2](view_maps)
                        if len(formers) == 3
                        else view_maps.flatten(3).transpose(2, 3).flatten(1, 2)
                    )
                actions, state = torch.empty(batch, config.horizon, joints), torch.empty(batch, joints)
                action.loss(actions, state, spatial, motion, instruction, views).backward()
                nn.utils.clip_grad_norm_(trainable, MAX_GRAD_NORM)
                optimizer.step()
                optimizer.zero_grad()
                if average is not None:
                    average.update()
        peak = next(iter(tracker.get_tracker_snapshot("peak").values()))
        ema_bytes = sum(a.numel() * a.element_size() for a in average.average) if average is not None else 0
        trained = sum(p.numel() for p in trainable)
    return (
        {str(kind.value if hasattr(kind, "value") else kind): value for kind, value in peak.items()},
        ema_bytes,
        trained,
    )


@dataclass
class Plan:
    batch: int
    idle: list[tuple[str, int]]  # (module, parameters) waiting on the host
    peak: dict[str, int]  # MemTracker's peak bytes by kind, and 'Total'
    ema_bytes: int
    trained: int  # parameters

    @property
    def total_bytes(self) -> int:
        return self.peak["Total"] + self.ema_bytes

    def __str__(self) -> str:
        lines = [f"stage 2 at batch {self.batch}, float32: the device holds what trains; on the host wait"]
        lines += [
            f"  {name}: {count(parameters)} parameters ({size(parameters * 4)})" for name, parameters in self.idle
        ]
        lines.append(f"the step on the device (MemTracker's peak), {count(self.trained)} trained parameters:")
        for kind in ("Parameter", "Gradient", "Optstate", "Activation", "Temp", "Buffer", "Other"):
            if self.peak.get(kind):
                lines.append(f"  {kind.lower()}: {size(self.peak[kind])}")
        # The EMA's copies are made outside the tracked modules: counted on top.
        if self.ema_bytes:
            lines.append(f"  EMA copy: {size(self.ema_bytes)}")
        lines.append(f"  total: {size(self.total_bytes)}")
        return "\n".join(lines)


def plan(model_config: dict[str, Any], joints: int, batch: int) -> Plan:
    """What stage 2 leaves idle on the host, and its step on the device."""
    vdm = VDMEncoderConfig.from_dict(model_config["system2"])
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
    peak, ema_bytes, trained = stage2_step(vdm, system1, joints, channels, view_channels, batch)
    idle_counts = [(name, sum(p.numel() for p in module.parameters())) for name, module in idle]
    return Plan(batch, idle_counts, peak, ema_bytes, trained)


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
