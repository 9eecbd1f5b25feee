import os
import random
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PARAMS_FILE = REPO / "config" / "video2act.yaml"
MODEL_TINY = REPO / "config" / "model_tiny.yaml"
JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]

# A model config smaller than model_tiny, for tests of the training pipeline, not of the policy.
MICRO = {
    "system2": {
        "num_frames": 4,
        "image_height": 32,
        "image_width": 32,
        "motion_height": 16,
        "motion_width": 16,
        "spatial_grid": 2,
        "motion_grid": 2,
        "token_dim": 32,
        "former_hidden": 32,
    },
    "system1": {"horizon": 8, "hidden_dim": 32, "num_layers": 1, "num_heads": 2, "num_inference_steps": 4},
}

# Keep this run's DDS traffic apart from any other run on the machine.
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(1, 200)))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")


def tiny_model_config(**system2_overrides) -> dict:
    config = yaml.safe_load(MODEL_TINY.read_text())
    config["system2"].update(system2_overrides)
    return config


def hand_made_latents(system1, spatial, motion, motion_energy: float = 0.0):
    """Latents with these stream tokens for `system1`, plus (zero) image
    tokens where its checkpoint reads them."""
    import numpy as np

    from video2act_core.latents import Latents

    views = np.zeros((8, system1.config.context_dim), np.float32) if system1.config.view_tokens else None
    return Latents(spatial, motion, motion_energy, views=views)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    from video2act_core.checkpoint import init_checkpoint

    path = tmp_path_factory.mktemp("checkpoints") / "tiny"
    init_checkpoint(path, tiny_model_config(), JOINTS, seed=0)
    return path


@pytest.fixture(scope="session")
def tiny_wan_checkpoint(tmp_path_factory) -> Path:
    """The tiny model with the official code's backbone (config/model_tiny_wan.yaml)."""
    from video2act_core.checkpoint import init_checkpoint

    path = tmp_path_factory.mktemp("checkpoints") / "tiny_wan"
    init_checkpoint(path, yaml.safe_load((REPO / "config" / "model_tiny_wan.yaml").read_text()), JOINTS, seed=0)
    return path


@pytest.fixture(scope="session")
def expert_bags(tmp_path_factory) -> Path:
    """Two scripted-expert episodes recorded as rosbag2 (mcap)."""
    from video2act_sim.expert import main as record

    out = tmp_path_factory.mktemp("bags") / "demos"
    assert record(["--out", str(out), "--episodes", "2", "--params", str(PARAMS_FILE)]) == 0
    return out


def episode_topics():
    from video2act_core.data.episode import EpisodeTopics
    from video2act_core.params import SimArmParams, node_params

    sim = node_params(SimArmParams, PARAMS_FILE, "video2act_sim_arm")
    return EpisodeTopics(
        sim.image_topic, sim.joint_states_topic, sim.trajectory_topic, sim.success_topic, sim.instruction_topic
    )


WORDS = "pick place the red blue cube square reach move a robot arm to left right".split()


def write_tokenizer(directory) -> None:
    """A word-level tokenizer with T5's special tokens, saved as transformers loads it."""
    import transformers
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{word: i + 3 for i, word in enumerate(WORDS)}}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    transformers.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    ).save_pretrained(directory)


@pytest.fixture(scope="session")
def umt5(tmp_path_factory):
    """A tiny umT5 written by transformers, laid out as in the Wan2.2
    diffusers download: text_encoder/ and tokenizer/, its width the tiny
    Wan transformer's text_dim."""
    import torch
    import transformers

    from video2act_core.models.backbones.wan import TINY_TRANSFORMER

    root = tmp_path_factory.mktemp("umt5")
    write_tokenizer(root / "tokenizer")
    torch.manual_seed(2)
    transformers.UMT5EncoderModel(
        transformers.UMT5Config(
            vocab_size=len(WORDS) + 3, d_model=TINY_TRANSFORMER["text_dim"], d_kv=8, d_ff=32, num_layers=1, num_heads=2
        )
    ).save_pretrained(root / "text_encoder")
    return root
