"""The probes of `video2act_eval.probe`: the ridge read-out finds what is
linearly there and nothing where nothing is, and the command runs episodes
of the simulator through a video model to a table."""

import json

import numpy as np

from video2act_eval.probe import HELD_OUT_EVERY, main, probe


def synthetic(samples_per_episode: int = 20, episodes: int = 20, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = samples_per_episode * episodes
    position, velocity = rng.normal(size=(n, 2)), rng.normal(size=(n, 2))
    labels = np.concatenate([position, velocity, np.linalg.norm(velocity, axis=1, keepdims=True)], axis=1)
    episodes_of = np.repeat(np.arange(episodes), samples_per_episode)
    return labels, episodes_of, rng


def test_a_probe_reads_what_the_features_hold_linearly_and_nothing_from_noise():
    labels, episodes, rng = synthetic()
    mixing = rng.normal(size=(5, 64))
    informative = labels @ mixing + 0.05 * rng.normal(size=(len(labels), 64))
    scores = probe(informative, labels, episodes)
    assert scores["position_r2"] > 0.95 and scores["velocity_r2"] > 0.95 and scores["speed_r2"] > 0.95
    assert scores["direction_agreement"] > 0.95

    noise = probe(rng.normal(size=(len(labels), 64)), labels, episodes)
    # Ridge chosen by cross-validation shrinks noise to about the mean.
    assert noise["position_r2"] < 0.1 and noise["velocity_r2"] < 0.1
    assert 0.3 < noise["direction_agreement"] < 0.7


def test_the_probe_command_runs_the_simulator_through_the_video_model(tmp_path):
    main(["--task", "track", "--episodes", str(2 * HELD_OUT_EVERY), "--every", "8", "--out", str(tmp_path)])
    results = json.loads((tmp_path / "probe.json").read_text())
    assert results["samples"] > 2 * HELD_OUT_EVERY
    assert {"pixels", "video model at random init (model_tiny.yaml)"} <= set(results)
    assert "| pixels |" in (tmp_path / "table.md").read_text()
