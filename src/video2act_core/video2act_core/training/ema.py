"""An exponential moving average of the weights stage 2 trains, as the
official Video2Act and RDT training keep it (their `EMAModel`, after
diffusion_policy's, with update_after_step 0, inv_gamma 1, min_value 0):
after optimisation step n the decay is 0 for n <= 1, then
min(1 - n^-power, max_decay), and every average moves
`decay x average + (1 - decay) x weight`. The checkpoint holds the average."""

from __future__ import annotations

import torch
from torch import nn


def ema_decay(step: int, power: float, max_decay: float) -> float:
    """The decay applied after `step` optimisation steps (counted from 0)."""
    since = max(0, step - 1)
    return 0.0 if since <= 0 else min(1.0 - (1.0 + since) ** -power, max_decay)


class WeightAverage:
    """The average of `parameters`, updated after each optimiser step."""

    def __init__(self, parameters: list[nn.Parameter], power: float, max_decay: float):
        self.parameters = list(parameters)
        self.power, self.max_decay = power, max_decay
        self.average = [p.detach().clone() for p in self.parameters]
        self.step = 0

    @torch.no_grad()
    def update(self) -> None:
        decay = ema_decay(self.step, self.power, self.max_decay)
        torch._foreach_lerp_(self.average, [p.detach() for p in self.parameters], 1.0 - decay)
        self.step += 1

    @torch.no_grad()
    def copy_to_parameters(self) -> None:
        """Puts the average into the trained parameters (for the checkpoint)."""
        for parameter, average in zip(self.parameters, self.average):
            parameter.copy_(average)

    def state_dict(self) -> dict:
        return {"step": self.step, "average": [a.cpu() for a in self.average]}

    def load_state_dict(self, state: dict) -> None:
        if len(state["average"]) != len(self.average):
            raise ValueError(
                f"the saved weight average has {len(state['average'])} tensors, the trained weights "
                f"{len(self.average)}: it was saved by another model"
            )
        self.step = state["step"]
        for average, saved in zip(self.average, state["average"]):
            average.copy_(saved)
