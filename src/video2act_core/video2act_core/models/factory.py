"""Fresh models from a model config (`config/model_*.yaml`): System 2's
encoder and System 1's action head, with the widths one derives from the
other and from the joints filled in, so they cannot disagree."""

from __future__ import annotations

from typing import Any

import torch

from video2act_core.models.dit import ActionDiffusion, DiTConfig
from video2act_core.models.vdm_encoder import SpatioMotionEncoder, VDMEncoderConfig


def system1_config(
    system1: dict[str, Any], vdm: VDMEncoderConfig, joint_names: list[str], view_channels: int
) -> DiTConfig:
    """System 1's config from its model config section (less
    `pretrained_path`), with what is derived from System 2 and the joints
    filled in; `view_channels`: the width of System 2's image features per
    cell (what an RDT head reads without a view former)."""
    derived = {
        "context_dim": vdm.token_dim,
        "action_dim": len(joint_names),
        "state_dim": len(joint_names),
        "view_tokens": vdm.view_cameras > 0,
    }
    if system1.get("head") == "rdt" and vdm.view_cameras:
        # The image tokens as they reach the head: per camera, frame and cell.
        derived["view_layout"] = [vdm.view_cameras, vdm.view_history, vdm.view_grid**2]
        derived["view_dim"] = vdm.token_dim if vdm.view_former else view_channels
    clash = set(derived) & set(system1)
    if clash:
        raise ValueError(f"system1 {sorted(clash)} are derived from system2 and the joints; remove them")
    if not vdm.view_former and system1.get("head") != "rdt":
        raise ValueError("system2.view_former: false needs system1.head: rdt (its img_adaptor reads the features)")
    return DiTConfig.from_dict({**{k: v for k, v in system1.items() if k != "pretrained_path"}, **derived})


def build_models(
    model_config: dict[str, Any], joint_names: list[str], seed: int = 0
) -> tuple[SpatioMotionEncoder, ActionDiffusion]:
    """Fresh models from a `config/model_*.yaml` mapping; derived widths are
    filled in so they cannot disagree; with `system1.pretrained_path`, the
    RDT head starts from RDT's released weights."""
    unknown = set(model_config) - {"system2", "system1", "training"}  # training: training.recipe
    if unknown:
        raise ValueError(f"unknown model config sections {sorted(unknown)}")
    torch.manual_seed(seed)
    vdm = VDMEncoderConfig.from_dict(model_config.get("system2", {}))
    system1 = model_config.get("system1", {})
    encoder = SpatioMotionEncoder(vdm)
    action = ActionDiffusion(system1_config(system1, vdm, joint_names, encoder.view_channels))
    # Read here, not kept in the config: a checkpoint holds its own weights.
    weights = system1.get("pretrained_path", "")
    if weights:
        if action.config.head != "rdt":
            raise ValueError("system1.pretrained_path takes RDT's released weights: it needs system1.head: rdt")
        from video2act_core.models.rdt import load_rdt_weights

        load_rdt_weights(action.model, weights)
    return encoder, action
