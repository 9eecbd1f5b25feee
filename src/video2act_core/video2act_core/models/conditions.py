"""What System 1 is conditioned on, shared by its heads (`dit.py`,
`rdt.py`): the task instruction's tokens (and a frozen encoder's words,
computed once), and condition dropout in training."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

# The conditions `condition_dropout` leaves out, each on its own draw.
DROPPED_CONDITIONS = ("state", "spatial", "motion", "views", "language")


@dataclass
class Instruction:
    """Tokenized task instructions for a batch: what the text encoder reads."""

    ids: torch.Tensor  # (B, L)
    mask: torch.Tensor  # (B, L) bool, True for real tokens
    # (B, L, dim): a frozen text encoder's output, computed once per
    # instruction instead of on every batch or chunk; None: run the encoder.
    words: torch.Tensor | None = None


def encoded_instruction(text_encoder: nn.Module, ids: torch.Tensor, mask: torch.Tensor) -> Instruction:
    """Tokens, with their words when the encoder is frozen (a T5 of 4.8 B
    parameters then runs once per instruction, not once per step)."""
    if not text_encoder.frozen:
        return Instruction(ids, mask)
    with torch.no_grad():
        return Instruction(ids, mask, text_encoder(ids, mask).float())


def instruction_words(text_encoder: nn.Module, instruction: Instruction, like: torch.Tensor) -> torch.Tensor:
    """The instruction's words in `like`'s dtype and device: cached, or encoded now."""
    words = instruction.words if instruction.words is not None else text_encoder(instruction.ids, instruction.mask)
    return words.to(like.device, like.dtype)


def kept_conditions(names, batch: int, probability: float, device) -> dict[str, torch.Tensor]:
    """Per condition, (batch,) True where a sample keeps it: each its own draw."""
    return dict(zip(names, torch.rand(len(names), batch, device=device) >= probability))


def zeroed_where_dropped(x: torch.Tensor | None, kept: torch.Tensor) -> torch.Tensor | None:
    return None if x is None else x * kept.view(-1, *[1] * (x.dim() - 1)).to(x.dtype)
