"""Training from recorded bags, resuming, and the closed-loop evaluation."""

import csv
import multiprocessing
import time

import numpy as np
import pytest
import torch
import yaml

from conftest import MICRO, PARAMS_FILE, REPO
from video2act_core.checkpoint import load_policy, read_manifest
from video2act_core.data.augmentation import CameraAugmentation
from video2act_core.data.samples import Clips, Samples, first_sample_of_episode, keep_every
from video2act_core.models.factory import build_models
from video2act_core.train import main as train
from video2act_core.training.features import fill_once, refine_all

pytestmark = pytest.mark.training


@pytest.fixture(scope="module")
def trained(expert_bags, tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    config = root / "micro.yaml"
    config.write_text(yaml.safe_dump(MICRO))
    out = root / "ckpt"
    common = [
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
        "--save-every",
        "10",
        "--device",
        "cpu",
    ]
    assert train(common + ["--steps", "20", "--stage1-steps", "2"]) == 0
    return out, common


def test_training_writes_a_loadable_checkpoint(trained):
    out, _ = trained
    manifest = read_manifest(out)
    assert manifest.metadata["trained"] and manifest.metadata["stage2_steps"] == 20
    assert manifest.metadata["stage1_steps"] == 2
    # The expert's bags carry the camera on /tf_static; perception compares it with tf.
    assert manifest.metadata["camera_pose"]["child"] == "camera_optical_frame"
    assert manifest.stats.state_std != [1.0] * 6  # statistics from the demonstrations
    load_policy(out, device="cpu")


def test_rerunning_resumes_from_the_saved_state(trained, capsys):
    out, common = trained
    capsys.readouterr()
    assert train(common + ["--steps", "30", "--overwrite"]) == 0
    printed = capsys.readouterr().out
    assert "resuming from" in printed and "stage 2, step 20" in printed
    assert read_manifest(out).metadata["stage2_steps"] == 30


def test_existing_checkpoint_is_not_overwritten_by_default(trained):
    out, common = trained
    with pytest.raises(SystemExit, match="exists"):
        train(common + ["--steps", "40"])


def test_a_system2_in_the_papers_stream_form_trains_saves_and_acts(expert_bags, tmp_path):
    """Signed per-frame motion maps (B, C, t, h, w) through the feature cache,
    the LayerNorm formers trained (no fixed scales to fit), the checkpoint
    reloaded and sampled."""
    paper = {**MICRO, "system2": {**MICRO["system2"], "stream_form": "paper", "filter_at": "latents"}}
    config = tmp_path / "paper.yaml"
    config.write_text(yaml.safe_dump(paper))
    out = tmp_path / "ckpt"
    arguments = ["--data", str(expert_bags), "--out", str(out), "--model-config", str(config)]
    arguments += ["--params", str(PARAMS_FILE), "--batch-size", "4", "--steps", "4", "--device", "cpu"]
    assert train(arguments) == 0
    policy = load_policy(out, device="cpu")
    assert policy.system2.config.stream_form == "paper"
    frames = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    latents = policy.system2.encode(frames)
    assert latents.motion.shape == (4 * 2 * 2, 32)  # SVD keeps every frame: 4 latent frames of 2x2 cells
    assert np.isfinite(policy.system1.act(latents, np.zeros(6))).all()


def test_ema_decay_follows_the_official_warm_up():
    from video2act_core.training.ema import WeightAverage, ema_decay

    assert ema_decay(0, 0.75, 0.9999) == ema_decay(1, 0.75, 0.9999) == 0.0
    assert ema_decay(2, 0.75, 0.9999) == pytest.approx(1 - 2**-0.75)
    assert ema_decay(10**3, 0.75, 0.9999) == pytest.approx(1 - 1000**-0.75)
    assert ema_decay(10**9, 0.75, 0.9999) == 0.9999
    weight = torch.nn.Parameter(torch.tensor([0.0]))
    average = WeightAverage([weight], power=1.0, max_decay=0.9999)
    for value in (1.0, 2.0, 3.0):  # decays 0, 0, 1/2
        weight.data.fill_(value)
        average.update()
    torch.testing.assert_close(average.average[0], torch.tensor([2.5]))


def test_with_ema_the_checkpoint_holds_the_average_and_acts_with_dpm_solver(expert_bags, tmp_path):
    """The official recipe on the micro model: condition dropout, EMA kept in
    the resumable state across a rerun, DPM-Solver++ sampling the chunk."""
    recipe = {"ema": True, "condition_dropout": 0.1, "sampler": "dpmsolver++", "timestep_spacing": "linspace"}
    config = tmp_path / "recipe.yaml"
    config.write_text(yaml.safe_dump({**MICRO, "system1": {**MICRO["system1"], **recipe}}))
    out = tmp_path / "ckpt"
    arguments = ["--data", str(expert_bags), "--out", str(out), "--model-config", str(config), "--device", "cpu"]
    arguments += ["--params", str(PARAMS_FILE), "--batch-size", "4", "--save-every", "3", "--lr-schedule", "constant"]
    assert train(arguments + ["--steps", "3"]) == 0
    with pytest.raises(SystemExit, match="ran --lr-schedule constant: resume with it"):
        train(arguments[:-2] + ["--steps", "6", "--overwrite"])  # the default schedule, one cycle
    assert train(arguments + ["--steps", "6", "--overwrite"]) == 0
    state = torch.load(out.with_name("ckpt.train") / "state.pt", weights_only=False)
    assert state["ema"]["step"] == 6  # three steps, then three more after resuming
    policy = load_policy(out, device="cpu")
    head = list(policy.system1.action.model.parameters())
    for loaded, average in zip(head, state["ema"]["average"][-len(head) :]):
        torch.testing.assert_close(loaded.detach(), average)
    raw = [state["action"][name] for name, _ in policy.system1.action.model.named_parameters()]
    assert any(not torch.equal(loaded.detach(), weight) for loaded, weight in zip(head, raw))
    assert read_manifest(out).metadata["lr_schedule"] == "constant"
    assert type(policy.system1.action.sampler).__name__ == "DPMSolverMultistepScheduler"
    frames = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    assert np.isfinite(policy.system1.act(policy.system2.encode(frames), np.zeros(6))).all()


def test_an_interrupted_feature_pass_resumes_after_its_last_saved_part(tmp_path):
    encoder, _ = build_models(MICRO, [f"joint{i}" for i in range(6)])
    rng = np.random.default_rng(0)
    clips = [rng.integers(0, 256, (4, 32, 32, 3), dtype=np.uint8) for _ in range(10)]
    augmentation = CameraAugmentation(probability=1.0)  # every clip draws from the generator
    started = []

    def progress(starts, stop_after=None, **_):
        for count, start in enumerate(starts):
            if count == stop_after:
                raise KeyboardInterrupt
            started.append(start)
            yield start

    whole = refine_all(encoder, clips, 2, progress, augmentation, seed=3)
    parts = tmp_path / "parts"
    with pytest.raises(KeyboardInterrupt):  # killed during its third batch: one part of two batches saved
        refine_all(encoder, clips, 2, lambda starts, **kw: progress(starts, 3, **kw), augmentation, 3, None, parts, 2)
    assert len(list(parts.glob("part-*.pt"))) == 1
    started.clear()
    resumed = refine_all(encoder, clips, 2, progress, augmentation, 3, None, parts, 2)
    assert started == [4, 6, 8]
    assert all(torch.equal(a, b) for a, b in zip(whole[:2], resumed[:2], strict=True))  # augmented as if never stopped
    assert resumed[2] is None


def fill_slowly_beside_another(path, start, log):
    start.wait()  # both processes find no cache file at the same moment

    def fill():
        with open(log, "a") as file:
            file.write("filled\n")
        time.sleep(0.5)
        return {"maps": [1, 2, 3]}

    fill_once(path, fill)


def test_two_trainings_beside_each_other_fill_one_feature_cache_once(tmp_path):
    context = multiprocessing.get_context("fork")
    start = context.Barrier(2)
    cache, log = tmp_path / "features-key.pt", tmp_path / "fills.log"
    processes = [context.Process(target=fill_slowly_beside_another, args=(cache, start, log)) for _ in range(2)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(30)
    assert [process.exitcode for process in processes] == [0, 0]
    assert log.read_text() == "filled\n"
    assert torch.load(cache) == {"maps": [1, 2, 3]}


def test_evaluation_writes_the_table(trained, tmp_path):
    from video2act_eval.evaluate import main as evaluate

    out, _ = trained
    assert (
        evaluate(
            [
                "--checkpoint",
                str(out),
                "--episodes",
                "1",
                "--ratios",
                "2",
                "--sync",
                "--variant",
                f"copy={out}",
                "--params",
                str(PARAMS_FILE),
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert [(r["variant"], r["mode"], r["update_ratio"]) for r in rows] == [
        ("full", "async", "2"),
        ("full", "sync", "1"),
        ("copy", "async", "2"),
    ]
    assert all(0.0 <= float(r["success_rate"]) <= 1.0 for r in rows)
    # Rates are reported, not asserted: they are timings (see scripts/bench_latency.py).
    assert all(float(r["control_rate_hz"]) > 0 for r in rows)
    assert (tmp_path / "results.png").stat().st_size > 0


def test_torchrun_trains_with_two_processes(expert_bags, tmp_path):
    """DistributedDataParallel on the CPU (gloo): one data shard per process,
    rank 0 writes the checkpoint."""
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:  # torchrun needs a concrete free port
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "micro.yaml"
    config.write_text(yaml.safe_dump(MICRO))
    out = tmp_path / "ckpt"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            f"--master_port={port}",
            "-m",
            "video2act_core.train",
            "--data",
            str(expert_bags),
            "--out",
            str(out),
            "--model-config",
            str(config),
            "--params",
            str(PARAMS_FILE),
            "--batch-size",
            "4",
            "--steps",
            "6",
            "--stage1-steps",
            "1",
            "--device",
            "cpu",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "2 process(es)" in result.stdout
    assert read_manifest(out).metadata["stage2_steps"] == 6
    load_policy(out, device="cpu")


def test_stale_maps_never_come_from_another_episode():
    episode_index = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    np.testing.assert_array_equal(first_sample_of_episode(episode_index), [0, 0, 0, 3, 3, 5, 5, 5, 5])


def test_keeping_every_nth_step_starts_at_each_episode():
    episode_index = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    # Clip i holds frame i: one "frame" per sample, numbered through the episodes.
    frames = [np.arange(3), np.arange(3, 5), np.arange(5, 9)]
    within = np.array([0, 1, 2, 0, 1, 0, 1, 2, 3])[:, None]
    samples = Samples(Clips(frames, episode_index, within), np.arange(9.0)[:, None], np.zeros((9, 2, 1)), episode_index)
    kept = keep_every(samples, 2)
    np.testing.assert_array_equal(kept.states[:, 0], [0, 2, 3, 5, 7])
    np.testing.assert_array_equal(kept.episode_index, [0, 0, 1, 2, 2])
    assert [int(c[0]) for c in kept.clips] == [0, 2, 3, 5, 7]


def test_the_memory_plan_counts_a_stage2_step_without_weights():
    """The tiny RDT config's step on fake tensors: every trained parameter
    resident with its AdamW moments and EMA copy; the idle video model
    counted apart; checkpointing the blocks lowers the activations."""
    from video2act_core.training.plan import plan

    config = yaml.safe_load((REPO / "config" / "model_tiny_rdt.yaml").read_text())
    encoder, action = build_models(config, [f"joint{i}" for i in range(6)])
    formers = [encoder.spatial_former, encoder.motion_former, encoder.view_former]
    trained = sum(p.numel() for p in action.model.parameters()) + sum(
        p.numel() for f in formers for p in f.parameters()
    )
    planned = plan(config, joints=6, batch=8, stage1=False)
    assert planned.trained == trained
    assert planned.peak["Parameter"] == 4 * trained and planned.ema_bytes == 4 * trained
    tensors = len(list(action.model.parameters())) + sum(len(list(f.parameters())) for f in formers)
    # AdamW's two moments and a step count per tensor, held through the second step.
    assert planned.peak["Optstate"] == 8 * trained + 4 * tensors
    assert [name for name, _ in planned.idle] == ["svd video model"]
    assert planned.idle[0][1] == sum(p.numel() for p in encoder.backbone.parameters())
    config["system1"]["gradient_checkpointing"] = True
    assert plan(config, joints=6, batch=8, stage1=False).peak["Activation"] < planned.peak["Activation"]


def test_the_memory_plan_of_a_lora_stage1_trains_peft_s_adapters_beside_a_bf16_model():
    """Stage 1 planned with the adapters peft puts on the model (as many
    parameters), the frozen model in bf16 (half of float32's), AdamW's
    moments for the adapters alone; stage 2 with the cache in bf16."""
    from video2act_core.training.plan import plan
    from video2act_core.training.recipe import TrainingRecipe
    from video2act_core.training.stage1 import attach_adapters

    full = plan(MICRO, joints=6, batch=16)
    recipe = {"precision": "bfloat16", "stage1_adapter": "lora", "lora_rank": 4}
    lora = plan({**MICRO, "training": recipe}, joints=6, batch=16)
    encoder, _ = build_models(MICRO, [f"joint{i}" for i in range(6)])
    backbone = sum(p.numel() for p in encoder.backbone.parameters())
    assert full.stage1_trained == backbone
    adapters = attach_adapters(encoder, TrainingRecipe(**recipe))
    assert lora.stage1_trained == sum(p.numel() for p in adapters)
    assert lora.stage1_peak["Parameter"] < 0.6 * full.stage1_peak["Parameter"]
    assert lora.stage1_peak.get("Optstate", 0) < 0.2 * full.stage1_peak.get("Optstate", 1)
    assert "stage 1 at 1 clip(s), bfloat16: LoRA rank 4 on the video model" in str(lora)
