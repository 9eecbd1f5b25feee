"""Wan2.2 weights in the original layout (the Wan-Video/Wan2.2 repository's
`WanModel` and `Wan2_2_VAE`; the official Video2Act robot fine-tune ships
so) converted into the diffusers models `WanBackbone` runs.

The transformer's keys go through diffusers' own single-file conversion
(`convert_wan_transformer_to_diffusers`), which renames Wan2.2 keys
correctly but detects a 5B checkpoint as 14B and, without accelerate,
loads non-strictly; here the models are built from the configs below (or
given ones) and loaded strictly, so a missing or misnamed key is an error,
not a random weight. diffusers 0.42 cannot convert the Wan2.2 VAE (it knows
Wan2.1's flat layout): `vae_to_diffusers` maps it (the rules below).
Tested on a tiny checkpoint written by the original code
(`test/fixtures/wan_original/`).
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

# Wan-AI/Wan2.2-TI2V-5B-Diffusers transformer/config.json: the values that
# diffusers' scripts/convert_wan_to_diffusers.py writes for "Wan2.2-TI2V-5B"
# (dim 3072 = 24 heads x 128, as the official wan/configs/wan_ti2v_5B.py).
WAN22_TI2V_5B_TRANSFORMER = {
    "patch_size": [1, 2, 2],
    "num_attention_heads": 24,
    "attention_head_dim": 128,
    "in_channels": 48,
    "out_channels": 48,
    "text_dim": 4096,
    "freq_dim": 256,
    "ffn_dim": 14336,
    "num_layers": 30,
    "cross_attn_norm": True,
    "qk_norm": "rms_norm_across_heads",
    "eps": 1e-06,
    "added_kv_proj_dim": None,
}
# Its vae/config.json: the Wan2.2 VAE (`vae22_diffusers_config` of the same
# script, less `clip_output`, which AutoencoderKLWan does not take). 2x2
# pixel patchify and three downsamples: 16x in space, 4x in time, 48 channels.
WAN22_VAE = {
    "base_dim": 160,
    "decoder_base_dim": 256,
    "z_dim": 48,
    "dim_mult": [1, 2, 4, 4],
    "num_res_blocks": 2,
    "attn_scales": [],
    "temperal_downsample": [False, True, True],
    "is_residual": True,
    "in_channels": 12,
    "out_channels": 12,
    "patch_size": 2,
    "scale_factor_temporal": 4,
    "scale_factor_spatial": 16,
    "latents_mean": [
        -0.2289,
        -0.0052,
        -0.1323,
        -0.2339,
        -0.2799,
        0.0174,
        0.1838,
        0.1557,
        -0.1382,
        0.0542,
        0.2813,
        0.0891,
        0.1570,
        -0.0098,
        0.0375,
        -0.1825,
        -0.2246,
        -0.1207,
        -0.0698,
        0.5109,
        0.2665,
        -0.2108,
        -0.2158,
        0.2502,
        -0.2055,
        -0.0322,
        0.1109,
        0.1567,
        -0.0729,
        0.0899,
        -0.2799,
        -0.1230,
        -0.0313,
        -0.1649,
        0.0117,
        0.0723,
        -0.2839,
        -0.2083,
        -0.0520,
        0.3748,
        0.0152,
        0.1957,
        0.1433,
        -0.2944,
        0.3573,
        -0.0548,
        -0.1681,
        -0.0667,
    ],
    "latents_std": [
        0.4765,
        1.0364,
        0.4514,
        1.1677,
        0.5313,
        0.4990,
        0.4818,
        0.5013,
        0.8158,
        1.0344,
        0.5894,
        1.0901,
        0.6885,
        0.6165,
        0.8454,
        0.4978,
        0.5759,
        0.3523,
        0.7135,
        0.6804,
        0.5833,
        1.4146,
        0.8986,
        0.5659,
        0.7069,
        0.5338,
        0.4889,
        0.4917,
        0.4069,
        0.4999,
        0.6866,
        0.4093,
        0.5709,
        0.6065,
        0.6415,
        0.4944,
        0.5726,
        1.2042,
        0.5458,
        1.6887,
        0.3971,
        1.0600,
        0.3943,
        0.5537,
        0.5444,
        0.4089,
        0.7468,
        0.7744,
    ],
}


# Inside a residual block: the original's Sequential indices -> diffusers' names.
_RESIDUAL = {
    "residual.0.gamma": "norm1.gamma",
    "residual.2.weight": "conv1.weight",
    "residual.2.bias": "conv1.bias",
    "residual.3.gamma": "norm2.gamma",
    "residual.6.weight": "conv2.weight",
    "residual.6.bias": "conv2.bias",
    "shortcut.weight": "conv_shortcut.weight",
    "shortcut.bias": "conv_shortcut.bias",
}
_VAE_TOP = {
    "conv1.weight": "quant_conv.weight",
    "conv1.bias": "quant_conv.bias",
    "conv2.weight": "post_quant_conv.weight",
    "conv2.bias": "post_quant_conv.bias",
}
_STAGE = re.compile(r"(downsamples|upsamples)\.(\d+)\.(?:downsamples|upsamples)\.(\d+)\.(.*)")


def vae_to_diffusers(state_dict: dict[str, torch.Tensor], num_res_blocks: int) -> dict[str, torch.Tensor]:
    """The original Wan2.2 VAE's (`WanVAE_` in vae2_2.py) state dict with
    diffusers' `AutoencoderKLWan(is_residual=True)` key names. Each encoder
    stage holds `num_res_blocks` residual blocks then its downsampler, each
    decoder stage one block more then its upsampler; the middle is block,
    attention, block."""
    converted = {}
    for key, value in state_dict.items():
        if key in _VAE_TOP:
            converted[_VAE_TOP[key]] = value
            continue
        side, rest = key.split(".", 1)
        if rest.startswith("conv1."):
            name = f"conv_in.{rest.removeprefix('conv1.')}"
        elif rest.startswith("head.0."):
            name = f"norm_out.{rest.removeprefix('head.0.')}"
        elif rest.startswith("head.2."):
            name = f"conv_out.{rest.removeprefix('head.2.')}"
        elif rest.startswith("middle."):
            _, index, inner = rest.split(".", 2)
            name = (
                f"mid_block.attentions.0.{inner}"
                if index == "1"
                else f"mid_block.resnets.{int(index) // 2}.{_RESIDUAL[inner]}"
            )
        else:
            match = _STAGE.fullmatch(rest)
            if match is None:
                raise KeyError(f"not a Wan2.2 VAE key: {key}")
            kind, stage, index, inner = match[1], int(match[2]), int(match[3]), match[4]
            blocks, resampler = ("down_blocks", "downsampler") if kind == "downsamples" else ("up_blocks", "upsampler")
            residuals = num_res_blocks if kind == "downsamples" else num_res_blocks + 1
            if index < residuals:
                name = f"{blocks}.{stage}.resnets.{index}.{_RESIDUAL[inner]}"
            else:
                name = f"{blocks}.{stage}.{resampler}.{inner}"
        converted[f"{side}.{name}"] = value
    return converted


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a .safetensors file, a directory of .safetensors shards, or
    a .pth/.pt file (loaded as weights only: no code runs from it)."""
    path = Path(path).expanduser()
    if path.is_dir():
        shards = sorted(path.glob("*.safetensors"))
        if not shards:
            raise FileNotFoundError(f"{path}: no .safetensors shards")
    else:
        shards = [path]
    state_dict = {}
    for shard in shards:
        if shard.suffix == ".safetensors":
            from safetensors.torch import load_file

            state_dict.update(load_file(shard))
        else:
            loaded = torch.load(shard, map_location="cpu", weights_only=True)
            state_dict.update(loaded.get("state_dict", loaded) if isinstance(loaded, dict) else loaded)
    return state_dict


def load_original(model: torch.nn.Module, converted: dict[str, torch.Tensor], source: str | Path) -> None:
    """Strictly: every parameter of `model` comes from the file, and nothing in the file is left over."""
    missing, unexpected = set(model.state_dict()) - set(converted), set(converted) - set(model.state_dict())
    if missing or unexpected:
        raise ValueError(
            f"{source} does not fit the configured model: {len(missing)} weights missing "
            f"(e.g. {sorted(missing)[:3]}), {len(unexpected)} unexpected (e.g. {sorted(unexpected)[:3]})"
        )
    model.load_state_dict(converted, strict=True)


def transformer_to_diffusers(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The original `WanModel` state dict with diffusers' key names."""
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers

    return convert_wan_transformer_to_diffusers(dict(state_dict))
