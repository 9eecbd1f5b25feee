"""System 1 on RDT-1B's architecture (models/rdt.py) against RDT's own code:
a tiny RDTRunner written by it (test/fixtures/rdt/write_fixture.py) loads
key for key, and gives its model call and its DPM-Solver++ sample."""

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import MICRO
from video2act_core.models.conditions import Instruction
from video2act_core.models.dit import ActionDiffusion, DiTConfig
from video2act_core.models.factory import build_models
from video2act_core.models.rdt import RDTRunner, load_rdt_weights

FIXTURE = Path(__file__).parent / "fixtures" / "rdt"
INDICES = [0, 1, 2, 3, 4, 10]
CAMERAS, HISTORY, PATCHES = 3, 2, 4


@pytest.fixture(scope="module")
def upstream():
    return (
        torch.load(FIXTURE / "tiny_rdt_runner.pt", weights_only=True),
        torch.load(FIXTURE / "tiny_rdt_io.pt", weights_only=True),
    )


def tiny_config(**overrides) -> DiTConfig:
    """The fixture's sizes as System 1's config."""
    return DiTConfig(
        head="rdt",
        action_dim=6,
        state_dim=6,
        horizon=8,
        context_dim=64,
        hidden_dim=64,
        num_layers=4,
        num_heads=4,
        num_train_timesteps=1000,
        num_inference_steps=5,
        prediction_type="sample",
        sampler="dpmsolver++",
        timestep_spacing="linspace",
        view_tokens=True,
        view_layout=[CAMERAS, HISTORY, PATCHES],
        view_dim=24,
        language={"type": "learned", "vocab_size": 21, "max_tokens": 10, "dim": 32},
        language_positions=16,
        unified_indices=INDICES,
        control_hz=30,
        **overrides,
    )


def test_the_runner_has_rdts_keys_and_start_and_gives_its_model_call(upstream):
    state, io = upstream
    runner = RDTRunner(64, 4, 4, 8, 32, 16, 24, (HISTORY, CAMERAS, PATCHES))
    fresh = runner.state_dict()
    assert list(fresh) == list(state)  # the same names, in the same order
    assert all(fresh[k].shape == state[k].shape for k in state)
    # Fresh position tables are RDT's sin-cos start (the fixture is untrained).
    for name in ("model.x_pos_embed", "model.lang_cond_pos_embed", "model.img_cond_pos_embed"):
        torch.testing.assert_close(fresh[name], state[name], rtol=0, atol=1e-6)
    runner.load_state_dict(state)
    with torch.no_grad():
        out = runner.eval().predict(
            io["noisy"],
            io["t"],
            io["state"],
            io["action_mask"],
            io["ctrl_freqs"],
            io["lang"],
            io["lang_mask"],
            io["img"],
        )
    torch.testing.assert_close(out, io["model_out"], rtol=1e-5, atol=1e-5)


def test_system1_with_the_rdt_head_samples_what_rdts_predict_action_samples(upstream):
    """The whole path: our joints into the unified space, the instruction's
    words, our camera-major image tokens, the control frequency, five
    DPM-Solver++ steps from t = 999, the joints read back."""
    state, io = upstream
    action = ActionDiffusion(tiny_config(use_spatial=False, use_motion=False)).eval()
    assert load_rdt_weights(action.model, FIXTURE / "tiny_rdt_runner.pt") == ["text_encoder.embedding.weight"]
    torch.testing.assert_close(
        action.model.model.final_layer.ffn_final.fc2.weight, state["model.final_layer.ffn_final.fc2.weight"]
    )
    # Word i of sample b is the fixture's language token: ids 1-10 and 11-20.
    ids = torch.arange(1, 21).reshape(2, 10)
    with torch.no_grad():
        action.model.text_encoder.embedding.weight[1:21] = io["lang"].reshape(20, -1)
    instruction = Instruction(ids, io["lang_mask"])
    # RDT's image tokens are frame-major; ours camera-major.
    views = io["img"].unflatten(1, (HISTORY, CAMERAS, PATCHES)).transpose(1, 2).flatten(1, 3)
    joints = io["state"][:, 0, INDICES]
    unused = torch.zeros(2, 1, 64)
    chunk = action.sample(
        joints, unused, unused, torch.Generator().manual_seed(io["sample_seed"]), instruction=instruction, views=views
    )
    torch.testing.assert_close(chunk, io["predict_action"][..., INDICES], rtol=1e-5, atol=1e-5)


def test_the_stream_tokens_join_the_image_tokens_and_the_gradient_reaches_every_input():
    torch.manual_seed(0)
    action = ActionDiffusion(tiny_config(condition_dropout=0.0))
    head = action.model
    with torch.no_grad():  # RDT starts its output at zero: open it so gradients flow back
        head.model.final_layer.ffn_final.fc2.weight.normal_(0, 0.02)
    inputs = {
        "state": torch.randn(2, 6, requires_grad=True),
        "spatial": torch.randn(2, 5, 64, requires_grad=True),
        "motion": torch.randn(2, 7, 64, requires_grad=True),
        "views": torch.randn(2, CAMERAS * HISTORY * PATCHES, 24, requires_grad=True),
    }
    instruction = Instruction(torch.tensor([[1, 2, 0], [3, 0, 0]]), torch.tensor([[1, 1, 0], [1, 0, 0]]).bool())
    conditioning = head.conditioning(inputs["state"], inputs["spatial"], inputs["motion"], instruction, inputs["views"])
    assert conditioning.images.shape == (2, CAMERAS * HISTORY * PATCHES + 5 + 7, 64)
    action.loss(
        torch.randn(2, 8, 6), inputs["state"], inputs["spatial"], inputs["motion"], instruction, inputs["views"]
    ).backward()
    for name, tensor in inputs.items():
        assert tensor.grad is not None and tensor.grad.abs().sum() > 0, name
    # The chunk comes back in our joints, from the unified indices only.
    chunk = action.eval().sample(
        inputs["state"].detach(), inputs["spatial"], inputs["motion"], instruction=instruction, views=inputs["views"]
    )
    assert chunk.shape == (2, 8, 6) and torch.isfinite(chunk).all()


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"unified_indices": [0, 1, 2, 3, 4]}, "6 distinct indices"),
        ({"unified_indices": [0, 1, 2, 3, 4, 4]}, "6 distinct indices"),
        ({"unified_indices": [0, 1, 2, 3, 4, 128]}, r"indices in \[0, 128\)"),
        ({"language": {}}, "a text encoder"),
        ({"language_positions": 8}, "max_tokens"),
        ({"view_layout": []}, "image tokens"),
        ({"context_dim": 32}, "hidden_dim=64"),
    ],
)
def test_an_rdt_config_that_cannot_work_is_refused_by_name(overrides, message):
    config = {k: v for k, v in tiny_config().to_dict().items() if k not in overrides}
    with pytest.raises(ValueError, match=message):
        DiTConfig.from_dict({**config, **overrides})


def test_a_model_config_starts_from_rdts_released_weights(tmp_path):
    """`system1.pretrained_path`: a release's keys load by name into a fresh
    model from a model config; one that does not fit is refused."""
    config = {
        "system2": {
            **MICRO["system2"],
            "view_cameras": CAMERAS,
            "view_history": HISTORY,
            "view_grid": 2,
            "token_dim": 64,
        },
        "system1": {
            **{
                k: v
                for k, v in tiny_config().to_dict().items()
                if k
                in (
                    "head",
                    "horizon",
                    "hidden_dim",
                    "num_layers",
                    "num_heads",
                    "num_train_timesteps",
                    "language",
                    "language_positions",
                    "unified_indices",
                )
            },
            "pretrained_path": str(FIXTURE / "tiny_rdt_runner.pt"),
        },
    }
    # The fixture's image adaptor reads 24 channels; this System 2's view former gives token_dim (64).
    with pytest.raises(ValueError, match=r"img_adaptor.0.weight \(64, 24\) vs \(64, 64\)"):
        build_models(config, [f"joint{i}" for i in range(6)])
    release = torch.load(FIXTURE / "tiny_rdt_runner.pt", weights_only=True)
    # The release with an image adaptor that reads this System 2's 64 channels.
    fitted = {**release, "img_adaptor.0.weight": torch.randn(64, 64)}
    path = tmp_path / "pytorch_model.bin"
    torch.save({"module": fitted}, path)  # as DeepSpeed saves it
    config["system1"]["pretrained_path"] = str(path)
    _, action = build_models(config, [f"joint{i}" for i in range(6)])
    loaded = action.model.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in fitted.items())
    assert "pretrained_path" not in action.config.to_dict()  # a checkpoint holds its own weights
    # A deeper head than the release would keep blocks at random: refused.
    config["system1"]["num_layers"] = 5
    with pytest.raises(ValueError, match=r"weights the release does not.*model.blocks.4"):
        build_models(config, [f"joint{i}" for i in range(6)])
    assert np.array_equal(action.config.view_layout, [CAMERAS, HISTORY, 4])


def test_a_policy_on_the_tiny_rdt_config_drives_a_closed_loop_episode(tmp_path):
    """config/model_tiny_rdt.yaml (DPM-Solver++, the instruction, image and
    stream tokens) through a checkpoint into one episode of the simulated arm."""
    from conftest import JOINTS, PARAMS_FILE, REPO
    from video2act_core.checkpoint import init_checkpoint, load_policy
    from video2act_eval.evaluate import main as evaluate

    init_checkpoint(tmp_path / "ckpt", yaml.safe_load((REPO / "config" / "model_tiny_rdt.yaml").read_text()), JOINTS)
    policy = load_policy(tmp_path / "ckpt", device="cpu")
    assert type(policy.system1.action.model).__name__ == "RDTActionHead"
    arguments = ["--checkpoint", str(tmp_path / "ckpt"), "--episodes", "1", "--ratios", "2"]
    assert evaluate(arguments + ["--params", str(PARAMS_FILE), "--out", str(tmp_path / "eval")]) == 0
    assert (tmp_path / "eval" / "results.csv").is_file()


def test_a_policy_whose_period_is_not_the_rdt_heads_control_rate_is_refused(tmp_path):
    """RDT conditions each chunk on its control frequency: played at another
    rate, the chunks would be the wrong motions."""
    import dataclasses

    from conftest import JOINTS, PARAMS_FILE, REPO
    from video2act_core.checkpoint import init_checkpoint, load_system1
    from video2act_core.control import JointLimits, build_supervisor
    from video2act_core.params import PolicyParams, node_params

    init_checkpoint(tmp_path / "ckpt", yaml.safe_load((REPO / "config" / "model_tiny_rdt.yaml").read_text()), JOINTS)
    system1 = load_system1(tmp_path / "ckpt", "cpu")
    params = node_params(PolicyParams, PARAMS_FILE, "video2act_policy")
    limits = JointLimits.from_lists(
        params.joint_names, params.joint_lower_limits, params.joint_upper_limits, params.max_joint_velocity
    )
    build_supervisor(system1, params, limits, start_armed=False)  # 0.1 s: the config's 10 Hz
    with pytest.raises(ValueError, match=r"told its chunks play at 10 Hz.*0.05 s plays them at 20 Hz"):
        build_supervisor(system1, dataclasses.replace(params, action_period_s=0.05), limits, start_armed=False)


@pytest.mark.training
def test_the_rdt_head_trains_with_the_official_recipe_and_drives_an_episode(expert_bags, tmp_path):
    """EMA, condition dropout and DPM-Solver++ on a micro RDT head, whose
    checkpoint (the weights' average) then drives a closed-loop episode."""
    from conftest import PARAMS_FILE
    from video2act_core.checkpoint import load_policy, read_manifest
    from video2act_core.train import main as train
    from video2act_eval.evaluate import main as evaluate

    micro = {
        "system2": {**MICRO["system2"], "view_cameras": 1, "view_grid": 2},
        "system1": {
            "head": "rdt",
            "horizon": 8,
            "hidden_dim": 32,
            "num_layers": 2,
            "num_heads": 2,
            "num_train_timesteps": 1000,
            "num_inference_steps": 5,
            "prediction_type": "sample",
            "sampler": "dpmsolver++",
            "timestep_spacing": "linspace",
            "condition_dropout": 0.1,
            "ema": True,
            "unified_indices": INDICES,
            "language": {"type": "learned", "max_tokens": 8, "dim": 16},
            "language_positions": 8,
            "normalization": "rdt",
        },
    }
    config = tmp_path / "micro_rdt.yaml"
    config.write_text(yaml.safe_dump(micro))
    out = tmp_path / "ckpt"
    arguments = ["--data", str(expert_bags), "--out", str(out), "--model-config", str(config), "--device", "cpu"]
    assert train(arguments + ["--params", str(PARAMS_FILE), "--batch-size", "4", "--steps", "4"]) == 0
    state = torch.load(out.with_name("ckpt.train") / "state.pt", weights_only=False)
    assert state["ema"]["step"] == 4
    policy = load_policy(out, device="cpu")
    frames = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    chunk = policy.system1.act(policy.system2.encode(frames), np.zeros(6))
    assert chunk.shape == (8, 6) and np.isfinite(chunk).all()
    # RDT's units: the arm's joints as recorded, the gripper (slot 10) over its recorded range.
    stats = read_manifest(out).stats
    assert stats.state_mean[:5] == [0.0] * 5 and stats.state_std[:5] == [1.0] * 5
    assert (stats.state_mean[5], stats.state_std[5]) != (0.0, 1.0)  # min and range of the recorded gripper
    episode = ["--checkpoint", str(out), "--episodes", "1", "--ratios", "2", "--params", str(PARAMS_FILE)]
    assert evaluate(episode + ["--out", str(tmp_path / "eval")]) == 0
    with open(tmp_path / "eval" / "results.csv") as table:
        rows = list(csv.DictReader(table))
    assert len(rows) == 1 and int(rows[0]["episodes"]) == 1 and float(rows[0]["chunk_rate_hz"]) > 0


def test_rdt_units_keep_the_joints_and_scale_the_grippers_to_the_unit_range():
    from video2act_core.normalization import NormalizationStats

    states = np.array([[0.5, -2.0], [1.5, 0.0]])
    actions = np.array([[[0.7, 1.0]], [[3.0, -1.0]]])
    stats = NormalizationStats.in_rdt_units(["elbow", "gripper"], [False, True], states, actions)
    np.testing.assert_allclose(stats.normalize_state(states), [[0.5, 0.0], [1.5, 2 / 3]])
    normalised = stats.normalize_action(actions)
    assert normalised[..., 1].min() >= 0.0 and normalised[..., 1].max() == 1.0
    np.testing.assert_allclose(stats.unnormalize_action(normalised), actions)
    with pytest.raises(ValueError, match="normalization"):
        DiTConfig(normalization="rdt")  # the DiT head reads the statistics' units


def test_gradient_checkpointing_gives_the_same_loss_and_gradients():
    """The RDT head's blocks recomputed in the backward pass: the same step."""
    inputs = (torch.randn(2, 8, 6), torch.randn(2, 6), torch.randn(2, 5, 64), torch.randn(2, 7, 64))
    instruction = Instruction(torch.tensor([[1, 2, 0], [3, 0, 0]]), torch.tensor([[1, 1, 0], [1, 0, 0]]).bool())
    views = torch.randn(2, CAMERAS * HISTORY * PATCHES, 24)
    steps = []
    for checkpointing in (False, True):
        torch.manual_seed(0)
        action = ActionDiffusion(tiny_config(gradient_checkpointing=checkpointing))
        assert action.model.model.gradient_checkpointing is checkpointing
        with torch.no_grad():
            action.model.model.final_layer.ffn_final.fc2.weight.normal_(0, 0.02)
        torch.manual_seed(1)
        loss = action.loss(*inputs, instruction, views)
        loss.backward()
        steps.append((loss.detach(), [p.grad.clone() for p in action.model.parameters() if p.grad is not None]))
    torch.testing.assert_close(steps[1][0], steps[0][0])
    assert len(steps[1][1]) == len(steps[0][1])
    for checkpointed, plain in zip(steps[1][1], steps[0][1]):
        torch.testing.assert_close(checkpointed, plain, rtol=1e-4, atol=1e-6)


def test_the_planner_takes_image_tokens_as_wide_and_as_many_as_the_rdt_head_reads():
    """With `view_former: false` the image tokens keep System 2's width
    (SigLIP's, here 24); a message of another width or count is refused by
    name, and the right one gives a chunk."""
    from video2act_core.control import ChunkPlanner, LatentsSample
    from video2act_core.latents import Latents
    from video2act_core.normalization import NormalizationStats
    from video2act_core.systems import System1

    system1 = System1(
        ActionDiffusion(tiny_config()), NormalizationStats.identity([f"joint{i}" for i in range(6)]), "tiny-rdt"
    )
    planner = ChunkPlanner(system1, 0.1, max_latents_age_s=1.0, max_joint_state_age_s=0.3)
    streams = np.zeros((5, 64), np.float32)

    def check(views):
        latents = Latents(streams, streams, 0.0, views=views)
        return planner.check_latents(LatentsSample(latents, 0, 1, "tiny-rdt"))

    images = CAMERAS * HISTORY * PATCHES
    assert check(np.zeros((images, 24), np.float32)) == ""
    assert check(np.zeros((images, 64), np.float32)) == f"image tokens shaped ({images}, 64), expected ({images}, 24)"
    assert check(np.zeros((images - 1, 24), np.float32)).startswith("image tokens shaped")
    latents = Latents(streams, streams, 0.0, views=np.zeros((images, 24), np.float32))
    chunk = system1.act(latents, np.zeros(6), instruction="reach")
    assert chunk.shape == (8, 6) and np.isfinite(chunk).all()


def test_a_left_out_state_reads_the_demonstrations_mean():
    """In RDT's units the mean state is not zero: condition dropout puts
    the state there, as RDT's training does, not at zero."""
    torch.manual_seed(0)
    action = ActionDiffusion(tiny_config(condition_dropout=0.999999))
    head = action.model
    head.state_mean.copy_(torch.tensor([0.5, -0.2, 1.0, 0.0, 0.3, 0.9]))
    instruction = Instruction(torch.tensor([[1, 2]]), torch.tensor([[True, True]]))
    views, streams = torch.randn(1, CAMERAS * HISTORY * PATCHES, 24), torch.randn(1, 5, 64)
    left_out = head.train().conditioning(torch.randn(1, 6), streams, streams, instruction, views).state_token
    at_mean = head.eval().conditioning(head.state_mean[None], streams, streams, instruction, views).state_token
    torch.testing.assert_close(left_out, at_mean)
