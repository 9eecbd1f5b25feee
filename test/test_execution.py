"""Execution strategies: how a new chunk joins the running one (replace,
temporal ensembling, real-time chunking), on the real tiny System 1."""

import copy
import dataclasses

import numpy as np
import pytest

from conftest import JOINTS, PARAMS_FILE, hand_made_latents
from video2act_core.checkpoint import load_system1
from video2act_core.control import (
    STRATEGIES,
    ExecutionStrategy,
    JointLimits,
    JointStateSample,
    LatentsSample,
    build_supervisor,
)
from video2act_core.control.execution import soft_mask
from video2act_core.params import PolicyParams, node_params, param_metadata
from video2act_core.trajectory import setpoints_ahead

pytestmark = pytest.mark.sim

PARAMS = node_params(PolicyParams, PARAMS_FILE, "video2act_policy")
PERIOD = PARAMS.action_period_s


def test_the_strategy_parameter_offers_the_strategies_there_are():
    assert tuple(param_metadata(PolicyParams)["execution_strategy"]["choices"]) == STRATEGIES
    with pytest.raises(ValueError, match="execution_strategy must be one of"):
        ExecutionStrategy("average", PERIOD, 16)


def test_soft_mask_is_frozen_then_decays_to_nothing_where_the_running_chunk_ends():
    weights = soft_mask(16, frozen=3, overlap=10)
    assert np.all(weights[:3] == 1.0)
    assert np.all(np.diff(weights[2:11]) < 0) and 0 < weights[9] < 0.2
    assert np.all(weights[10:] == 0.0)
    assert np.all(soft_mask(16, frozen=20, overlap=5)[:5] == 1.0)  # never frozen beyond the running chunk


def test_frozen_steps_come_out_as_the_prior_exactly(tiny_checkpoint):
    system1 = load_system1(tiny_checkpoint, "cpu", seed=3)
    horizon, width = system1.config.horizon, system1.config.context_dim
    latents = hand_made_latents(
        system1, np.random.default_rng(0).normal(size=(64, width)).astype(np.float32), np.zeros((64, width), np.float32)
    )
    prior = np.random.default_rng(1).uniform(-1, 1, (horizon, len(JOINTS)))
    weights = soft_mask(horizon, frozen=4, overlap=9)
    free = system1.act(latents, np.zeros(len(JOINTS)))
    guided = system1.act(latents, np.zeros(len(JOINTS)), prior=prior, prior_weights=weights)
    np.testing.assert_allclose(guided[:4], prior[:4], atol=1e-4)
    # Past the frozen steps the chunk is pulled toward the prior, not pinned to it.
    assert np.abs(guided[4:9] - prior[4:9]).mean() < np.abs(free[4:9] - prior[4:9]).mean()
    assert np.abs(guided[4:9] - prior[4:9]).max() > 1e-3


@pytest.mark.parametrize(
    "prediction_type, sampler",
    [("epsilon", "ddim"), ("sample", "ddim"), ("epsilon", "dpmsolver++"), ("sample", "dpmsolver++")],
)
def test_inpainting_pins_the_frozen_steps_whatever_the_head_predicts(prediction_type, sampler):
    import torch

    from video2act_core.models.dit import ActionDiffusion, DiTConfig

    torch.manual_seed(0)
    head = ActionDiffusion(
        DiTConfig(
            action_dim=2,
            state_dim=2,
            horizon=6,
            context_dim=8,
            hidden_dim=16,
            num_layers=1,
            num_heads=2,
            prediction_type=prediction_type,
            sampler=sampler,
        )
    ).eval()
    prior = torch.randn(1, 6, 2)
    weights = torch.tensor([[1.0, 1.0, 0.5, 0.2, 0.0, 0.0]])
    chunk = head.sample(
        torch.zeros(1, 2),
        torch.randn(1, 3, 8),
        torch.randn(1, 3, 8),
        torch.Generator().manual_seed(1),
        prior=prior,
        prior_weights=weights,
    )
    torch.testing.assert_close(chunk[:, :2], prior[:, :2], atol=1e-4, rtol=0)
    assert not torch.allclose(chunk[:, 4:], prior[:, 4:], atol=1e-3)


def supervisor_for(checkpoint, strategy: str):
    system1 = load_system1(checkpoint, "cpu", seed=5)
    params = dataclasses.replace(PARAMS, execution_strategy=strategy, max_latents_age_s=60.0)
    limits = JointLimits.from_lists(
        params.joint_names, params.joint_lower_limits, params.joint_upper_limits, params.max_joint_velocity
    )
    return build_supervisor(system1, params, limits, start_armed=True)


def run_ticks(supervisor, delay_s: float, ticks: int = 8) -> list[tuple]:
    """Ticks one action period apart, each chunk sent `delay_s` after the
    state it was planned from; per tick the step and the running command's
    setpoints at the new command's points (None for the first)."""
    width = supervisor.planner.system1.config.context_dim
    rng = np.random.default_rng(7)
    tokens = hand_made_latents(
        supervisor.planner.system1,
        rng.normal(size=(64, width)).astype(np.float32),
        rng.normal(size=(64, width)).astype(np.float32),
        0.1,
    )
    latents = LatentsSample(tokens, stamp_ns=10_000_000_000, sequence=1, model_id=supervisor.planner.system1.model_id)
    steps = []
    for tick in range(ticks):
        now = 10.0 + tick * PERIOD
        tracker, _ = supervisor.envelope.command_in_force()
        tracker = copy.deepcopy(tracker)
        step = supervisor.tick(
            latents,
            JointStateSample(np.zeros(len(JOINTS)), stamp_s=now),
            now,
            publish_time=lambda plan, now=now: now + delay_s,
        )
        command = step.command
        steps.append((step, None if tracker is None else setpoints_ahead(tracker, command.stamp_s + command.times_s)))
    return steps


def seam_disagreement(steps) -> float:
    """Mean distance of each new command's first point from where the running command had the setpoint then."""
    return float(
        np.mean(
            [np.linalg.norm(step.command.positions[0] - running[0]) for step, running in steps if running is not None]
        )
    )


def due_before(delay_s: float) -> int:
    """Points of a chunk due before it takes over, `delay_s` after planning."""
    return int(np.sum(PERIOD * np.arange(1, 17) < delay_s + PARAMS.command_lead_s))


def test_real_time_chunking_freezes_what_executes_during_inference_and_continues_the_running_chunk(tiny_checkpoint):
    delay = 0.25  # the first two points of each new chunk are due before it is sent
    rtc = run_ticks(supervisor_for(tiny_checkpoint, "rtc"), delay)
    replace = run_ticks(supervisor_for(tiny_checkpoint, "replace"), delay)
    # The first chunk has nothing to continue; from then on the delay is measured and the prefix frozen.
    assert [step.plan.frozen_steps for step, _ in rtc] == [0] + [due_before(delay)] * (len(rtc) - 1)
    for step, _ in rtc:
        # The elapsed part is dropped: every point sent is due after the take-over.
        command = step.command
        assert len(command.times_s) == 16 - due_before(delay)
        assert np.all(command.stamp_s + command.times_s >= command.issued_s + PARAMS.command_lead_s - 1e-9)
    # Continuity at the seam: the untrained head samples unrelated chunks, so
    # replacing jumps; real-time chunking continues the running chunk.
    assert seam_disagreement(rtc) < 0.2 * seam_disagreement(replace)


def test_the_frozen_prefix_is_the_running_commands_setpoints(tiny_checkpoint):
    supervisor = supervisor_for(tiny_checkpoint, "rtc")
    run_ticks(supervisor, delay_s=0.25, ticks=3)
    tracker, end_s = supervisor.envelope.command_in_force()
    planned = 10.0 + 3 * PERIOD
    prior = supervisor.execution.prior(tracker, end_s, planned)
    frozen = due_before(0.25)
    assert prior.frozen_steps == frozen
    expected = setpoints_ahead(tracker, planned + PERIOD * np.arange(1, frozen + 1))
    np.testing.assert_allclose(prior.positions[:frozen], expected)
    width = supervisor.planner.system1.config.context_dim
    tokens = hand_made_latents(
        supervisor.planner.system1, np.ones((64, width), np.float32), np.zeros((64, width), np.float32)
    )
    chunk = supervisor.planner.system1.act(
        tokens, np.zeros(len(JOINTS)), prior=prior.positions, prior_weights=prior.weights
    )
    np.testing.assert_allclose(chunk[:frozen], expected, atol=1e-4)


def test_temporal_ensembling_averages_the_chunks_that_predicted_each_step():
    strategy = ExecutionStrategy("temporal_ensemble", 0.1, horizon=4, ensemble_weight_decay=0.0)
    first = np.arange(4.0)[:, None] * np.ones((1, 2))  # steps at 0.1..0.4 s
    np.testing.assert_allclose(strategy.combine(first, 0.0), first)
    second = np.full((4, 2), 10.0)  # steps at 0.2..0.5 s
    combined = strategy.combine(second, 0.1)
    # Steps 0.2..0.4 s: the mean of both predictions; 0.5 s: the new chunk's alone.
    np.testing.assert_allclose(combined[:, 0], [(1 + 10) / 2, (2 + 10) / 2, (3 + 10) / 2, 10.0])
    weighted = ExecutionStrategy("temporal_ensemble", 0.1, horizon=4, ensemble_weight_decay=1.0)
    weighted.combine(first, 0.0)
    # ACT's weights: exp(-m i), i = 0 the oldest, so the older prediction counts more.
    w_old, w_new = 1.0, np.exp(-1.0)
    np.testing.assert_allclose(weighted.combine(second, 0.1)[0, 0], (w_old * 1 + w_new * 10) / (w_old + w_new))
    strategy.reset()
    np.testing.assert_allclose(strategy.combine(second, 0.1), second)


def test_replace_passes_chunks_through():
    strategy = ExecutionStrategy("replace", 0.1, horizon=4)
    chunk = np.ones((4, 2))
    assert strategy.combine(chunk, 0.0) is chunk and strategy.prior(None, 0.0, 0.0) is None


def test_the_evaluation_compares_strategies_under_delay_in_parallel_processes(tiny_wan_checkpoint, tmp_path):
    """On the Wan backbone's tiny config: the sweep's rows, table and plot."""
    import csv

    from video2act_eval.evaluate import main as evaluate

    assert (
        evaluate(
            [
                "--checkpoint",
                str(tiny_wan_checkpoint),
                "--episodes",
                "1",
                "--strategies",
                "replace",
                "rtc",
                "--delays-ms",
                "0",
                "200",
                "--jobs",
                "2",
                "--params",
                str(PARAMS_FILE),
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    rows = list(csv.DictReader(open(tmp_path / "results.csv")))
    assert [(r["strategy"], float(r["delay_ms"])) for r in rows] == [
        ("replace", 0.0),
        ("replace", 200.0),
        ("rtc", 0.0),
        ("rtc", 200.0),
    ]
    # A slower System 1 gets fewer chunks to the arm (it skips the ticks it is busy for).
    assert float(rows[1]["chunk_rate_hz"]) < float(rows[0]["chunk_rate_hz"])
    assert all(float(r["seam_position_jump"]) >= 0 for r in rows)
    assert (tmp_path / "execution.png").stat().st_size > 0
