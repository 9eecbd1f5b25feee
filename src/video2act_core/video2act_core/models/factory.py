"""Fresh models from a model config (`config/model_*.yaml`): System 2's
encoder and System 1's action head, with the widths one derives from the
other and from the joints filled in, so they cannot disagree."""

from __future__ import annotations

from typing import Any

import torch

from video2act_core.models.dit import ActionDiffusion, DiTConfig
from video2act_core.models.vdm_encoder import SpatioMotionEncoder, VDMEncoderConfig


def build_models(
    model_config: dict[str, Any], joint_names: list[str], seed: int = 0
) -> tuple[SpatioMotionEncoder, ActionDiffusion]:
    """Fresh models from a `config/model_*.yaml` mapping; derived widths are
    filled in so they cannot disagree."""
    unknown = set(model_config) - {"system2", "system1"}
    if unknown:
        raise ValueError(f"unknown model config sections {sorted(unknown)}")
    torch.manual_seed(seed)
    vdm = VDMEncoderConfig.from_dict(model_config.get("system2", {}))
    derived = {
        "context_dim": vdm.token_dim,
        "action_dim": len(joint_names),
        "state_dim": len(joint_names),
        "view_tokens": vdm.view_cameras > 0,
    }
    clash = set(derived) & set(model_config.get("system1", {}))
    if clash:
        raise ValueError(f"system1 {sorted(clash)} are derived from system2 and the joints; remove them")
    dit = DiTConfig.from_dict({**model_config.get("system1", {}), **derived})
    return SpatioMotionEncoder(vdm), ActionDiffusion(dit)
