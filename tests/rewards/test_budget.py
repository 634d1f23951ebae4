"""rewards/budget.py: the budget config's checks, the Lagrangian's penalty and dual ascent, by hand."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rewards.budget import (
    BudgetConfig,
    BudgetPenalty,
    LagrangeMultiplier,
    dual_ascent,
    greedy_usage,
)


def test_budget_is_off_by_default_and_one_kind_when_set():
    assert not BudgetConfig().enabled
    dollars = BudgetConfig(cost_per_query=0.0017)
    assert dollars.enabled and dollars.model is None and dollars.target == 0.0017
    share = BudgetConfig(share={"gpt-4": 0.3})
    assert share.enabled and share.model == "gpt-4" and share.target == 0.3
    with pytest.raises(ValueError, match="no budget is set"):
        _ = BudgetConfig().target


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cost_per_query": 0.001, "share": {"gpt-4": 0.5}}, "a budget is one kind, keep one"),
        ({"cost_per_query": 0.0}, "cost_per_query=0.0: must be positive"),
        ({"share": {"gpt-4": 0.0}}, r"share.gpt-4=0.0: a share lies strictly between 0 and 1"),
        ({"share": {"gpt-4": 1.0}}, r"share.gpt-4=1.0"),
        ({"share": {"gpt-4": 0.2, "mixtral": 0.5}}, "caps one model's share, keep one"),
        ({"cost_per_query": 0.001, "lambda_lr": 0.0}, "lambda_lr=0.0: must be positive"),
    ],
)
def test_config_checks_say_what_to_change(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BudgetConfig(**kwargs)


def test_penalty_is_the_multiplier_times_usage_over_the_budget():
    penalty = BudgetPenalty(target=0.5)
    # 0.2 * 1 / 0.5 = 0.4; 0.2 * 0 / 0.5 = 0; an unknown usage stays unknown
    assert penalty(["a", "b", "c"], usage=[1.0, 0.0, None], multiplier=0.2) == [-0.4, -0.0, None]
    assert penalty(["a"], usage=[1.0], multiplier=0.0) == [-0.0]  # a slack budget costs nothing
    assert penalty.__name__ == "budget"
    with pytest.raises(ValueError, match="2 completions but 1 usages"):
        penalty(["a", "b"], usage=[1.0], multiplier=0.2)
    with pytest.raises(ValueError, match="must be positive"):
        BudgetPenalty(target=0.0)


def test_dual_ascent_by_hand():
    # 50% over a $0.002 budget at lr 0.1: 0.2 + 0.1 * 0.5 = 0.25
    assert dual_ascent(0.2, measured=0.003, target=0.002, lr=0.1) == pytest.approx(0.25)
    assert dual_ascent(0.2, measured=0.002, target=0.002, lr=0.1) == pytest.approx(0.2)  # on budget: stays
    # 25% under: 0.2 - 0.1 * 0.25 = 0.175
    assert dual_ascent(0.2, measured=0.0015, target=0.002, lr=0.1) == pytest.approx(0.175)
    assert dual_ascent(0.05, measured=0.0, target=0.002, lr=0.1) == 0.0  # never below 0


def test_greedy_usage_takes_the_argmax_decisions():
    usage = np.array([[1.0, 0.0], [0.0, 1.0]])  # share budget on action 1: usage = 1[action == 1]
    actions = np.array([[1, 0], [0, 1]])
    greedy = np.array([[1, 1], [1, 1]])  # the argmax was action 1 everywhere
    means = np.array([0.0, 1.0])
    assert greedy_usage(usage, actions, greedy, means) == 1.0  # the samples' 0.5 is not what deploys
    assert greedy_usage(usage, actions, actions, means) == 0.5  # greedy == sampled: their own usage
    dollars = np.array([[0.004, 0.0001]])  # a dollar budget: an off-greedy step costs its action's mean
    assert greedy_usage(dollars, np.array([[1, 0]]), np.array([[1, 1]]), np.array([0.0, 0.003])) == 0.0035


def test_multiplier_rises_while_overspending_and_falls_to_zero_when_under():
    lam = LagrangeMultiplier(target=0.25, lr=0.1, num_actions=2)
    over = np.ones((4, 2), dtype=int)  # every decision picks the capped model: usage 1.0
    values = []
    for _ in range(3):
        assert lam.step(usage=over.astype(float), actions=over, greedy=over)["measured"] == 1.0
        values.append(lam.value)
    assert values == pytest.approx([0.3, 0.6, 0.9])  # + 0.1 * (1 - 0.25) / 0.25 per rollout
    under = np.zeros((4, 2), dtype=int)  # none does: usage 0, lam falls by 0.1 per rollout
    for expected in (0.8, 0.7):
        assert lam.step(usage=under.astype(float), actions=under, greedy=under)["lambda"] == pytest.approx(
            expected
        )
    for _ in range(10):
        lam.step(usage=under.astype(float), actions=under, greedy=under)
    assert lam.value == 0.0


def test_multiplier_steps_on_the_greedy_decisions_not_the_samples():
    lam = LagrangeMultiplier(target=0.5, lr=0.1, num_actions=2)
    actions = np.array([[1, 0], [0, 1]])  # the samples use exactly the 0.5 budget ...
    greedy = np.ones_like(actions)  # ... but every argmax is the capped model
    out = lam.step(usage=(actions == 1).astype(float), actions=actions, greedy=greedy)
    assert out == {"lambda": pytest.approx(0.1), "measured": 1.0, "sampled": 0.5}  # 0.1 * (1 - 0.5) / 0.5
    out = lam.step(usage=(actions == 1).astype(float), actions=actions, greedy=greedy, lr_scale=0.25)
    assert out["lambda"] == pytest.approx(0.1 + 0.025)  # a quarter of the step, as the policy's lr


def test_multiplier_state_is_json_and_goes_on_exactly():
    rng = np.random.default_rng(0)
    rollouts = [
        (rng.random((4, 2)) * 0.004, rng.integers(0, 2, (4, 2)), rng.integers(0, 2, (4, 2))) for _ in range(6)
    ]
    straight = LagrangeMultiplier(target=0.002, lr=0.05, num_actions=2)
    for rollout in rollouts:
        straight.step(*rollout)
    first = LagrangeMultiplier(target=0.002, lr=0.05, num_actions=2)
    for rollout in rollouts[:3]:
        first.step(*rollout)
    resumed = LagrangeMultiplier(target=0.002, lr=0.05, num_actions=2)
    resumed.load_state_dict(json.loads(json.dumps(first.state_dict())))
    for rollout in rollouts[3:]:
        resumed.step(*rollout)
    assert resumed.state_dict() == straight.state_dict()
    with pytest.raises(ValueError, match="budget state for 2 actions, this policy has 3"):
        LagrangeMultiplier(target=0.002, lr=0.05, num_actions=3).load_state_dict(first.state_dict())
