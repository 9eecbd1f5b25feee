"""How training holds and adapts the models: the `training` section of a
model config (`config/model_*.yaml`), read by `train` (with --init, the
recipe the checkpoint recorded) and by the memory plan; a config without
one trains as the tiny configs do, everything in float32 and the whole
backbone in stage 1.

    training:
      precision: bfloat16   # the frozen video model, its feature cache and
                            # stage 2's autocast; trained weights stay float32
      stage1_adapter: lora  # stage 1 trains low-rank adapters (peft), merged after
      lora_rank: 8
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import torch

PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16}
STAGE1_ADAPTERS = ("full", "lora")
# The official code's adapters (wan_lora.py: rank 8, alpha = rank) sit on the
# self- and cross-attention projections; these are their diffusers names, in
# Wan's, HunyuanVideo's and SVD's denoisers alike.
ATTENTION_PROJECTIONS = r".*\.(to_q|to_k|to_v|to_out\.0)"


@dataclass(frozen=True)
class TrainingRecipe:
    precision: str = "float32"
    stage1_adapter: str = "full"
    lora_rank: int = 8
    lora_alpha: float | None = None  # None: the rank (a scale of 1), as the official code
    lora_targets: str = ATTENTION_PROJECTIONS  # a regular expression over module names

    @classmethod
    def from_model_config(cls, model_config: dict[str, Any]) -> TrainingRecipe:
        """The recipe of a model config mapping, checked.

        Raises:
            ValueError: an unknown key or a value the recipe cannot take.
        """
        section = model_config.get("training") or {}
        unknown = set(section) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown training options {sorted(unknown)}")
        recipe = cls(**section)
        if recipe.precision not in PRECISIONS:
            raise ValueError(f"training.precision {recipe.precision!r}: one of {sorted(PRECISIONS)}")
        if recipe.stage1_adapter not in STAGE1_ADAPTERS:
            raise ValueError(f"training.stage1_adapter {recipe.stage1_adapter!r}: one of {list(STAGE1_ADAPTERS)}")
        if recipe.lora_rank < 1:
            raise ValueError(f"training.lora_rank must be at least 1, got {recipe.lora_rank}")
        return recipe

    @property
    def dtype(self) -> torch.dtype:
        return PRECISIONS[self.precision]

    @property
    def low_precision(self) -> bool:
        return self.dtype != torch.float32

    def autocast(self, device: torch.device):
        """Stage 2's forward: in the recipe's precision where it is lower
        than float32 (the weights, their gradients and AdamW stay float32)."""
        return torch.autocast(device.type, dtype=self.dtype, enabled=self.low_precision)
