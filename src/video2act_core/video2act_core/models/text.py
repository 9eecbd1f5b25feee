"""Language tokens for System 1: the task instruction as a sequence of
token embeddings that the DiT cross-attends to, as the paper's RDT head
attends to T5 tokens of the instruction.

Two encoders behind one interface (`tokenize` text -> ids and mask on the
CPU, `forward` ids -> embeddings):
- `learned`: words hashed into a small embedding table trained with the
  head; no download, for the CPU configs and tests;
- `pretrained`: a local Hugging Face text encoder directory (T5, umT5 or
  CLIP text; `transformers` must be installed), frozen and referenced by
  path rather than copied into checkpoints.
"""

from __future__ import annotations

import inspect
import re
import zlib
from typing import Any

import torch
from torch import nn


class LearnedTextEncoder(nn.Module):
    """Lower-cased words, each hashed (crc32) to one of `vocab_size` rows."""

    frozen = False  # trained with the head: its words change every step

    def __init__(self, vocab_size: int = 4096, max_tokens: int = 16, dim: int = 64):
        super().__init__()
        self.vocab_size, self.max_tokens, self.dim = vocab_size, max_tokens, dim
        # Row 0 is padding; words use rows 1..vocab_size-1.
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=0)

    def tokenize(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, max_tokens) ids and a bool mask of the real tokens; an empty
        instruction keeps one (padding) token so attention has a key."""
        ids = torch.zeros(len(texts), self.max_tokens, dtype=torch.long)
        mask = torch.zeros(len(texts), self.max_tokens, dtype=torch.bool)
        for row, text in enumerate(texts):
            words = re.findall(r"[a-z0-9]+", text.lower())[: self.max_tokens]
            for column, word in enumerate(words):
                ids[row, column] = 1 + zlib.crc32(word.encode()) % (self.vocab_size - 1)
            mask[row, : max(len(words), 1)] = True
        return ids, mask

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.embedding(ids.to(self.embedding.weight.device))


class PretrainedTextEncoder(nn.Module):
    """A local T5 / umT5 / CLIP text encoder, frozen. Its weights are kept
    out of this module's state dict (the checkpoint stores the path)."""

    frozen = True  # an instruction's words are computed once (`dit.encoded_instruction`)

    def __init__(self, path: str, max_tokens: int = 32):
        super().__init__()
        try:
            from transformers import AutoConfig, AutoModel, AutoTokenizer
        except ImportError as error:
            raise RuntimeError(
                "a pretrained text encoder needs the transformers package: pip install transformers"
            ) from error
        config = AutoConfig.from_pretrained(path, local_files_only=True)
        self._tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModel.from_pretrained(path, local_files_only=True)
        # Encoder-decoder checkpoints (T5) keep their encoder only.
        model = model.get_encoder() if hasattr(model, "get_encoder") else getattr(model, "text_model", model)
        model.requires_grad_(False).eval()
        self._models = [model]  # a list: not registered, not saved, moved by `_apply`
        self.max_tokens = max_tokens
        self.dim = int(
            getattr(config, "d_model", None) or getattr(config, "hidden_size", None) or config.text_config.hidden_size
        )

    def _apply(self, fn, recurse=True):
        self._models[0]._apply(fn)
        return super()._apply(fn, recurse)

    def tokenize(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self._tokenizer(
            texts, padding="max_length", truncation=True, max_length=self.max_tokens, return_tensors="pt"
        )
        return batch["input_ids"], batch["attention_mask"].bool()

    @torch.no_grad()
    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        model = self._models[0]
        device = next(model.parameters()).device
        return model(input_ids=ids.to(device), attention_mask=mask.to(device).long()).last_hidden_state


TEXT_ENCODERS = ("learned", "pretrained")


def text_encoder_arguments(config: dict[str, Any]) -> tuple[type[nn.Module], dict[str, Any]]:
    """The encoder class a `system1.language` mapping names and its
    constructor's arguments (the mapping over the defaults), checked: a
    ValueError naming the key, its value and what is expected, in one line."""
    kind = config.get("type", "learned")
    if kind not in TEXT_ENCODERS:
        raise ValueError(f"language.type={kind!r}: expected one of {TEXT_ENCODERS}")
    cls = LearnedTextEncoder if kind == "learned" else PretrainedTextEncoder
    options = {k: v for k, v in config.items() if k != "type"}
    signature = inspect.signature(cls.__init__)
    accepted = [name for name in signature.parameters if name != "self"]
    for name, value in options.items():
        if name not in accepted:
            raise ValueError(f"language.{name}={value!r}: expected one of the {kind} text encoder's keys {accepted}")
    bound = signature.bind_partial(None, **options)
    bound.apply_defaults()
    arguments = {name: bound.arguments.get(name) for name in accepted}  # None: required, not given
    for name, value in arguments.items():
        if name == "path":
            if not isinstance(value, str) or not value:
                raise ValueError(
                    f"language.path={value!r}: a pretrained text encoder needs `path`, expected a local model directory"
                )
        elif not isinstance(value, int) or isinstance(value, bool) or value < (2 if name == "vocab_size" else 1):
            # Row 0 of the learned table is padding: words need at least one more.
            raise ValueError(f"language.{name}={value!r}: expected an int >= {2 if name == 'vocab_size' else 1}")
    return cls, arguments


def build_text_encoder(config: dict[str, Any]) -> LearnedTextEncoder | PretrainedTextEncoder:
    """From a `system1.language` mapping: {type: learned, vocab_size, max_tokens, dim}
    or {type: pretrained, path, max_tokens}."""
    cls, arguments = text_encoder_arguments(config)
    return cls(**arguments)
