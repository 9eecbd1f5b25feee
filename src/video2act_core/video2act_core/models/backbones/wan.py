"""Wan2.2 (TI2V-5B) as a System 2 backbone, the model of the official
Video2Act code.

Frames go through Wan's causal video VAE into normalised latents; the
transformer runs once on the clean latents at timestep 0 and the hidden
states after its first `num_blocks` blocks (20 of 30 in the paper) are the
features, one map per latent frame. Only those blocks run.

Upstream: diffusers (Apache-2.0) `WanTransformer3DModel` and
`AutoencoderKLWan`, written against diffusers 0.42.1; weights
Wan-AI/Wan2.2-TI2V-5B-Diffusers (Apache-2.0), loaded from a local
directory. Our changes: `features` repeats the transformer's forward up to
the blocks (patch embedding, rotary positions, time and text embedding) and
stops after `num_blocks`; `WanTransformer3DModel.forward` is the reference
to re-check on a diffusers upgrade (a test compares the two).

Text: Wan conditions every block on umT5-XXL embeddings of a prompt. With
`text_encoder_path` (a directory holding `text_encoder/` and `tokenizer/`,
as the Wan2.2 diffusers download does) the `prompt` is encoded once, as
WanPipeline does it (padded to `text_tokens` with zeros past its end), and
kept as a buffer saved with System 2's head: a checkpoint needs no umT5 to
run. Without one, a fixed null context of zeros stands in (the padding Wan
itself appends to every prompt); with an all-zero context every text token
is the same vector, so cross-attention returns the same result for any
token count: one token is enough. The task instruction itself goes to
System 1's language tokens, per episode; the prompt here is fixed. With
`instruction_context` the official code's way instead: umT5 of the task
instruction itself is the context (each new one encoded once and kept; no
instruction is the all-zero context, as are the `instruction_dropout` of
them dropped in training), and the umT5 stays needed at run time.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from video2act_core.models.backbones import (
    NUM_TRAIN_TIMESTEPS,
    VideoBackbone,
    check_flow_options,
    flow_noise_levels,
    transformer_and_vae,
    wan_original,
)

# A Wan2.2-style transformer and VAE small enough for CPU tests and the demo:
# the same block types as TI2V-5B (patch (1, 2, 2), RMS-normed q/k, residual
# VAE blocks with 2x2 pixel patchify), 51 k and 178 k parameters. The VAE
# downsamples 8x in space (Wan2.2: 16x) so that 32x32 frames still give a
# 2x2 token grid; its two temporal downsamples give Wan's 4x in time.
TINY_TRANSFORMER: dict[str, Any] = {
    "patch_size": [1, 2, 2],
    "num_attention_heads": 2,
    "attention_head_dim": 16,
    "in_channels": 8,
    "out_channels": 8,
    "text_dim": 16,
    "freq_dim": 32,
    "ffn_dim": 64,
    "num_layers": 3,
}
TINY_VAE: dict[str, Any] = {
    "base_dim": 8,
    "z_dim": 8,
    "dim_mult": [1, 2, 2],
    "num_res_blocks": 1,
    "temperal_downsample": [True, True],
    "is_residual": True,
    "in_channels": 12,
    "out_channels": 12,
    "patch_size": 2,
    "scale_factor_temporal": 4,
    "scale_factor_spatial": 8,
    # Arbitrary but not the identity, so that tests see the normalisation.
    "latents_mean": [-0.2, -0.1, 0.0, 0.1, 0.2, 0.3, -0.3, 0.05],
    "latents_std": [0.5, 1.0, 1.5, 0.8, 1.2, 0.6, 2.0, 0.9],
}


def encode_prompts(root: Path, prompts: list[str], tokens: int, text_dim: int) -> torch.Tensor:
    """(N, tokens, text_dim) umT5 embeddings of `prompts` as WanPipeline makes
    them: the tokenizer's ids with an attention mask, zeros past each prompt."""
    try:
        from transformers import AutoTokenizer, UMT5EncoderModel
        from transformers.utils import logging
    except ImportError as error:
        raise RuntimeError(f"the text encoder in {root} needs the transformers package") from error
    if not (root / "text_encoder").is_dir() or not (root / "tokenizer").is_dir():
        raise FileNotFoundError(f"{root}: expected text_encoder/ (umT5) and tokenizer/ subfolders")
    logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(root / "tokenizer", local_files_only=True)
    encoder = UMT5EncoderModel.from_pretrained(root / "text_encoder", local_files_only=True).eval()
    if encoder.config.d_model != text_dim:
        raise ValueError(f"umT5 in {root} has width {encoder.config.d_model}, the transformer's text_dim is {text_dim}")
    batch = tokenizer(
        prompts,
        padding="max_length",
        max_length=tokens,
        truncation=True,
        add_special_tokens=True,
        return_attention_mask=True,
        return_tensors="pt",
    )
    with torch.no_grad():
        hidden = encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    return (hidden * batch["attention_mask"][..., None]).float()


def feature_cell(transformer: Mapping[str, Any], vae: Mapping[str, Any]) -> tuple[int, int]:
    """Pixels per feature cell (height, width) of a Wan transformer and VAE
    (their configs): the VAE's optional pixel patchify and one 2x
    downsample per stage after the first, then the transformer's patch."""
    vae_scale = (vae.get("patch_size") or 1) * 2 ** (len(vae["dim_mult"]) - 1)
    return vae_scale * transformer["patch_size"][1], vae_scale * transformer["patch_size"][2]


class WanBackbone(VideoBackbone):
    # Wan's VAE is causal in time: the first frame alone, then 4 frames per latent frame.
    temporal_compression = 4

    def __init__(
        self,
        pretrained_path: str = "",
        transformer: dict[str, Any] | None = None,
        vae: dict[str, Any] | None = None,
        # Features are the hidden states after the first N blocks; 0 or more
        # than the model has means all. 20 is the paper's (of 30).
        num_blocks: int = 20,
        # Transformer timestep of the feature pass, 0..1000. 0: clean latents,
        # as the official code. Above 0 the latents are mixed with fixed noise
        # (the same for every latent frame, so that it does not look like motion).
        timestep: float = 0.0,
        noise_seed: int = 0,
        # Tokens of the text context: the prompt's, zero-padded to this many
        # (Wan pads to 512), or all zeros without a text encoder (module docstring).
        text_tokens: int = 1,
        # A local umT5 (text_encoder/ and tokenizer/ inside) and the prompt it encodes once.
        text_encoder_path: str = "",
        prompt: str = "",
        # Conditioned on the task instruction instead of a fixed prompt (the
        # official code's context): umT5 of each new instruction, once, kept;
        # no instruction (or one dropped in training, `instruction_dropout`
        # of them) is the all-zero context. Needs `text_encoder_path` at run
        # time too.
        instruction_context: bool = False,
        instruction_dropout: float = 0.1,
        # How `denoising_loss` draws noise levels: uniform, or logit-normal
        # (more weight on mid-range noise, as SD3 trains).
        loss_timestep_sampling: str = "logit_normal",
        # Weights in the original Wan2.2 layout instead of `pretrained_path`
        # (`wan_original`): the transformer's .safetensors file or shard
        # directory and the VAE's .pth, into models built from `transformer`
        # and `vae` (default: Wan2.2-TI2V-5B's configs).
        original_transformer: str = "",
        original_vae: str = "",
    ):
        # Every argument, as `backbone_arguments` checks a config's.
        self.check_arguments({name: value for name, value in locals().items() if name not in ("self", "__class__")})
        super().__init__()
        from diffusers import AutoencoderKLWan, WanTransformer3DModel

        original = bool(original_transformer)
        self.transformer, self.vae = transformer_and_vae(
            "Wan",
            WanTransformer3DModel,
            AutoencoderKLWan,
            pretrained_path,
            transformer or (wan_original.WAN22_TI2V_5B_TRANSFORMER if original else TINY_TRANSFORMER),
            vae or (wan_original.WAN22_VAE if original else TINY_VAE),
        )
        if original:
            self._load_original(original_transformer, original_vae)

        config = self.transformer.config
        self._check_shapes()
        total_blocks = len(self.transformer.blocks)
        self.num_blocks = num_blocks if 0 < num_blocks <= total_blocks else total_blocks
        self.timestep, self.noise_seed = float(timestep), noise_seed
        self._set_up_text(text_tokens, text_encoder_path, prompt, instruction_context, instruction_dropout)
        self.loss_timestep_sampling = loss_timestep_sampling
        self.feature_channels = config.num_attention_heads * config.attention_head_dim
        self.cell = feature_cell(config, self.vae.config)
        self.size_multiple = math.lcm(*self.cell)
        self._register_latent_statistics()

    def _set_up_text(
        self, tokens: int, text_encoder_path: str, prompt: str, instruction_context: bool, instruction_dropout: float
    ) -> None:
        """The text context: the prompt's, kept as a buffer, or (with
        `instruction_context`) each instruction's, encoded when first given."""
        context = torch.zeros(1, tokens, self.transformer.config.text_dim)
        self.conditions_on_instruction, self.instruction_dropout = instruction_context, instruction_dropout
        self._text_encoder = Path(text_encoder_path).expanduser()
        self._instruction_contexts: dict[str, torch.Tensor] = {"": context[0]}
        self._instructions = [""]
        if instruction_context and not all((self._text_encoder / d).is_dir() for d in ("text_encoder", "tokenizer")):
            # Found now, not at the first instruction: a robot without it must not start.
            raise FileNotFoundError(f"{self._text_encoder}: expected text_encoder/ (umT5) and tokenizer/ subfolders")
        if text_encoder_path and not instruction_context:
            context = encode_prompts(self._text_encoder, [prompt], tokens, context.shape[-1])
        # Saved with System 2's head, so a checkpoint loads without the text encoder.
        self.register_buffer("text_context", context)

    def _register_latent_statistics(self) -> None:
        # Shaped to broadcast over (B, c, t, h, w); not saved: they come from the VAE config.
        z_dim = self.vae.config.z_dim
        self.register_buffer(
            "latents_mean",
            torch.tensor(self.vae.config.latents_mean, dtype=torch.float32).view(1, z_dim, 1, 1, 1),
            persistent=False,
        )
        self.register_buffer(
            "latents_std",
            torch.tensor(self.vae.config.latents_std, dtype=torch.float32).view(1, z_dim, 1, 1, 1),
            persistent=False,
        )

    def _load_original(self, transformer_file: str, vae_file: str) -> None:
        """Original-layout weights into the models just built (`wan_original`)."""
        weights = wan_original.read_state_dict(transformer_file)
        wan_original.load_original(self.transformer, wan_original.transformer_to_diffusers(weights), transformer_file)
        weights = wan_original.read_state_dict(vae_file)
        converted = wan_original.vae_to_diffusers(weights, self.vae.config.num_res_blocks)
        wan_original.load_original(self.vae, converted, vae_file)

    def _check_shapes(self) -> None:
        """The transformer reads the VAE's latents, one latent frame per token row."""
        config = self.transformer.config
        if config.in_channels != self.vae.config.z_dim:
            raise ValueError(
                f"Wan transformer in_channels={config.in_channels} must equal the VAE's z_dim={self.vae.config.z_dim}"
            )
        if config.patch_size[0] != 1:
            raise ValueError(
                f"Wan transformer patch_size={list(config.patch_size)}: features are per latent "
                "frame, so the time patch must be 1"
            )

    @classmethod
    def check_arguments(cls, arguments: dict[str, Any]) -> None:
        check_flow_options(arguments)
        if arguments["text_tokens"] < 1:
            raise ValueError(f"backbone.text_tokens={arguments['text_tokens']!r}: expected >= 1")
        transformer, vae = arguments["original_transformer"], arguments["original_vae"]
        if bool(transformer) != bool(vae):
            name, value = ("original_vae", vae) if transformer else ("original_transformer", transformer)
            raise ValueError(f"backbone.{name}={value!r}: expected a path (the original layout's files go together)")
        if arguments["instruction_context"] and not arguments["text_encoder_path"]:
            raise ValueError("backbone.text_encoder_path='': expected a umT5 directory with instruction_context")
        if arguments["instruction_context"] and arguments["prompt"]:
            raise ValueError(f"backbone.prompt={arguments['prompt']!r}: expected '' with instruction_context")
        if not 0.0 <= arguments["instruction_dropout"] <= 1.0:
            raise ValueError(f"backbone.instruction_dropout={arguments['instruction_dropout']!r}: expected in [0, 1]")
        if transformer and arguments["pretrained_path"]:
            raise ValueError(
                f"backbone.pretrained_path={arguments['pretrained_path']!r}: expected '' with original_transformer "
                "(one source of weights)"
            )

    def feature_grid(self, height: int, width: int) -> tuple[int, int]:
        """One feature cell per transformer token: `cell` pixels each way."""
        return height // self.cell[0], width // self.cell[1]

    def diffusers_modules(self) -> dict[str, torch.nn.Module]:
        return {"transformer": self.transformer, "vae": self.vae}

    def encode(self, frames: torch.Tensor) -> torch.Tensor:
        """Frames to normalised VAE latent means, as the Wan pipelines normalise them.

        Args:
            frames: (B, T, 3, H, W) in [0, 1].

        Returns:
            (B, t, c, h, w) with t = 1 + (T - 1) // 4. The VAE encodes 1 + 4k
            frames; any others are dropped from the start of the clip, so the
            newest frame is always encoded (the VAE itself would drop the newest).
        """
        surplus = (frames.shape[1] - 1) % self.temporal_compression
        pixels = frames[:, surplus:].transpose(1, 2).to(self.vae.dtype) * 2.0 - 1.0  # (B, 3, T, H, W)
        latents = self.vae.encode(pixels).latent_dist.mode()
        latents = (latents - self.latents_mean.to(latents)) / self.latents_std.to(latents)
        return latents.transpose(1, 2)

    def set_instructions(self, texts: list[str]) -> None:
        """The instruction of each clip of the next batches (one for all, or
        one per clip); umT5 runs once for the ones not seen before."""
        if not self.conditions_on_instruction:
            return
        new = sorted({text for text in texts if text not in self._instruction_contexts})
        if new:
            tokens, width = self.text_context.shape[1:]
            encoded = encode_prompts(self._text_encoder, new, tokens, width)
            self._instruction_contexts.update(zip(new, encoded, strict=True))
        self._instructions = list(texts)

    @property
    def encoded_instructions(self) -> list[str]:
        return sorted(text for text in self._instruction_contexts if text)

    def _text_context(self, batch: int, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
        """(B, text_tokens, text_dim): the instructions' or the prompt's umT5
        embeddings, or zeros (module docstring). A batch of k x the
        instructions given (System 2 doubles its batch) repeats them."""
        if not self.conditions_on_instruction:
            return self.text_context.to(device, dtype).expand(batch, -1, -1)
        contexts = torch.stack([self._instruction_contexts[text] for text in self._instructions])
        if batch % len(contexts):
            raise ValueError(f"a batch of {batch} clips for {len(contexts)} instructions")
        return contexts.to(device, dtype).repeat(batch // len(contexts), 1, 1)

    def features(self, latents: torch.Tensor, context: torch.Tensor | None = None) -> torch.Tensor:
        """One transformer pass on the latents, read after the first `num_blocks` blocks.

        Args:
            latents: (B, t, c, h, w) from `encode`; h and w divisible by the patch size (2).

        Returns:
            (B, t, C, h / 2, w / 2), C = the transformer's width (3072 for TI2V-5B).
        """
        batch, steps, _, height, width = latents.shape
        _, patch_h, patch_w = self.transformer.config.patch_size
        if height % patch_h or width % patch_w:
            raise ValueError(
                f"latent grid {height}x{width} is not divisible by the transformer's patch {patch_h}x{patch_w}"
            )
        transformer = self.transformer
        sample = latents.transpose(1, 2).to(transformer.dtype)  # (B, c, t, h, w), as the transformer takes it
        noise_level = self.timestep / NUM_TRAIN_TIMESTEPS
        if noise_level > 0:
            generator = torch.Generator(device="cpu").manual_seed(self.noise_seed)
            noise = torch.randn((1, sample.shape[1], 1, height, width), generator=generator).to(sample)
            sample = (1.0 - noise_level) * sample + noise_level * noise
        timestep = torch.full((batch,), self.timestep, device=sample.device)

        # WanTransformer3DModel.forward up to its block loop (diffusers 0.42.1).
        rotary = transformer.rope(sample)
        tokens = transformer.patch_embedding(sample).flatten(2).transpose(1, 2).contiguous()
        context = self._text_context(batch, sample.device, sample.dtype)
        _, modulation, context, _ = transformer.condition_embedder(timestep, context)
        modulation = modulation.unflatten(1, (6, -1))
        for block in transformer.blocks[: self.num_blocks]:
            tokens = block(tokens, context, modulation, rotary)

        # The patch embedding flattens its (t, h, w) output grid with w fastest.
        grid = tokens.unflatten(1, (steps, height // patch_h, width // patch_w))  # (B, t, h', w', C)
        return grid.permute(0, 1, 4, 2, 3)

    def denoising_loss(
        self, latents: torch.Tensor, generator: torch.Generator | None = None, context: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Wan's rectified-flow objective on the full transformer: with
        x_s = (1 - s) x0 + s noise, predict the velocity noise - x0.

        Args:
            latents: (B, t, c, h, w) clean latents from `encode`.
            generator: a CPU generator for the noise levels and the noise.

        Returns:
            The mean squared velocity error, a scalar.
        """
        batch = latents.shape[0]
        noise_level = flow_noise_levels(batch, self.loss_timestep_sampling, generator)
        noise = torch.randn(latents.shape, generator=generator).to(latents)
        noise_level = noise_level.to(latents.device)
        scale = noise_level.to(latents.dtype).view(batch, 1, 1, 1, 1)
        noisy = (1.0 - scale) * latents + scale * noise
        transformer = self.transformer
        prediction = transformer(
            noisy.transpose(1, 2).to(transformer.dtype),
            timestep=noise_level * NUM_TRAIN_TIMESTEPS,
            encoder_hidden_states=self._text_context(batch, latents.device, transformer.dtype),
            return_dict=False,
        )[0]
        return F.mse_loss(prediction.float(), (noise - latents).transpose(1, 2).float())
