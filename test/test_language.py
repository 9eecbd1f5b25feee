"""The task instruction: recorded with demonstrations, read from bags and
LeRobot datasets, trained into System 1's context, and required by the
planner of a language-conditioned checkpoint."""

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import JOINTS, MICRO, PARAMS_FILE, episode_topics, hand_made_latents
from video2act_core.checkpoint import load_system1, read_manifest
from video2act_core.control import ChunkPlanner, JointStateSample, LatentsSample, Mode
from video2act_core.data.joint_names import JointNameMap
from video2act_core.data.lerobot import read_lerobot_dataset
from video2act_core.data.rosbag import read_episode
from video2act_core.data.samples import find_episode_bags
from video2act_core.models.conditions import Instruction
from video2act_core.models.dit import ActionDiffusion, DiTConfig
from video2act_core.models.text import LearnedTextEncoder, build_text_encoder
from video2act_core.params import SimArmParams, node_params
from video2act_core.train import main as train

pytestmark = pytest.mark.training

FIXTURES = Path(__file__).parent / "fixtures" / "lerobot"
LANGUAGE = {"type": "learned", "vocab_size": 256, "max_tokens": 6, "dim": 16}


def test_learned_encoder_tokenizes_words_the_same_way_every_time():
    encoder = LearnedTextEncoder(vocab_size=256, max_tokens=4)
    ids, mask = encoder.tokenize(["Pick up the CUBE!", "pick up the cube", "", "place it on the plate now"])
    assert torch.equal(ids[0], ids[1]) and mask[0].tolist() == [True] * 4
    assert mask[2].tolist() == [True, False, False, False] and ids[2].tolist() == [0] * 4  # one padding key
    assert mask[3].all()  # truncated to max_tokens
    assert encoder(ids, mask).shape == (4, 4, 64)
    with pytest.raises(ValueError, match="language.type"):
        build_text_encoder({"type": "bert"})
    with pytest.raises(ValueError, match="needs `path`"):
        build_text_encoder({"type": "pretrained"})


def test_the_head_learns_to_tell_two_instructions_apart():
    torch.manual_seed(0)
    config = DiTConfig(
        action_dim=2,
        state_dim=2,
        horizon=4,
        context_dim=8,
        hidden_dim=32,
        num_layers=2,
        num_heads=2,
        num_train_timesteps=50,
        num_inference_steps=5,
        language=LANGUAGE,
    )
    head = ActionDiffusion(config)
    texts = ["move to the left", "move to the right"]
    ids, mask = head.model.text_encoder.tokenize(texts)
    targets = torch.tensor([-1.0, 1.0])  # the same scene, opposite actions
    optimizer = torch.optim.AdamW(head.model.parameters(), lr=3e-3)
    state, spatial, motion = torch.zeros(32, 2), torch.zeros(32, 4, 8), torch.zeros(32, 4, 8)
    for _ in range(300):
        which = torch.randint(2, (32,))
        actions = targets[which][:, None, None].expand(32, 4, 2)
        loss = head.loss(actions, state, spatial, motion, Instruction(ids[which], mask[which]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    head.eval()
    generator = torch.Generator().manual_seed(1)
    means = [
        float(
            head.sample(
                state[:8],
                spatial[:8],
                motion[:8],
                generator,
                instruction=Instruction(ids[i].expand(8, -1), mask[i].expand(8, -1)),
            ).mean()
        )
        for i in range(2)
    ]
    print(f"mean action: '{texts[0]}' {means[0]:.2f}, '{texts[1]}' {means[1]:.2f} (trained on -1, +1)")
    assert means[0] < -0.5 and means[1] > 0.5


def test_the_expert_records_the_task_and_bags_give_it_back(expert_bags):
    sim = node_params(SimArmParams, PARAMS_FILE, "video2act_sim_arm")
    episode = read_episode(find_episode_bags([expert_bags])[0], episode_topics(), JOINTS, images=False)
    assert episode.instruction == sim.task_instruction == "reach the red square"


@pytest.mark.parametrize("version", ["v2.1", "v3.0"])
def test_lerobot_tasks_become_instructions(version):
    episodes = read_lerobot_dataset(
        FIXTURES / version, JOINTS, frame_size=(32, 32), joint_name_map=JointNameMap(strip_suffix=".pos")
    )
    assert [e.instruction for e in episodes] == ["pick up the cube"] * len(episodes)


@pytest.fixture(scope="module")
def language_checkpoint(expert_bags, tmp_path_factory):
    root = tmp_path_factory.mktemp("language")
    config = root / "micro_language.yaml"
    micro = {"system2": MICRO["system2"], "system1": {**MICRO["system1"], "language": LANGUAGE}}
    config.write_text(yaml.safe_dump(micro))
    out = root / "ckpt"
    assert (
        train(
            [
                "--data",
                str(expert_bags),
                "--out",
                str(out),
                "--model-config",
                str(config),
                "--params",
                str(PARAMS_FILE),
                "--batch-size",
                "8",
                "--steps",
                "10",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    return out


def test_training_records_the_instructions_and_the_policy_takes_the_only_one(language_checkpoint):
    assert read_manifest(language_checkpoint).metadata["instructions"] == ["reach the red square"]
    system1 = load_system1(language_checkpoint, "cpu")
    assert system1.needs_instruction and system1.default_instruction == "reach the red square"
    width = system1.config.context_dim
    latents = hand_made_latents(system1, np.ones((4, width), np.float32), np.zeros((4, width), np.float32))
    # The instruction is part of the context: another one gives another chunk.
    reach = load_system1(language_checkpoint, "cpu", seed=2).act(
        latents, np.zeros(6), instruction="reach the red square"
    )
    other = load_system1(language_checkpoint, "cpu", seed=2).act(latents, np.zeros(6), instruction="wave at the camera")
    assert not np.allclose(reach, other)


def test_a_checkpoint_that_knows_several_tasks_holds_until_it_is_told_one(language_checkpoint):
    system1 = load_system1(language_checkpoint, "cpu")
    system1.trained_instructions = ["reach the red square", "touch the blue circle"]
    planner = ChunkPlanner(system1, 0.1, max_latents_age_s=3.0, max_joint_state_age_s=0.5)
    planner.instruction = system1.default_instruction
    width = system1.config.context_dim
    latents = LatentsSample(
        hand_made_latents(system1, np.zeros((4, width), np.float32), np.zeros((4, width), np.float32)),
        stamp_ns=10_000_000_000,
        sequence=1,
        model_id=system1.model_id,
    )
    state = JointStateSample(np.zeros(6), stamp_s=10.0)
    held = planner.plan(latents, state, now_s=10.05)
    assert held.mode == Mode.HOLD and "no task instruction" in held.reason
    planner.instruction = "touch the blue circle"
    assert planner.plan(latents, state, now_s=10.05).mode == Mode.ACTIVE
    assert dataclasses.asdict(system1.config)["language"] == LANGUAGE
