"""The maths of PPO as pure functions: advantages, losses, masking and normalisers.

Shapes use ``T`` for rollout steps, ``N`` for parallel envs, ``B`` for a (mini)batch and ``A`` for
actions. Nothing here keeps state or touches an optimizer; :mod:`rl_router.trainers.ppo` composes
these functions and the tests check each one against numbers worked out by hand.
"""

from __future__ import annotations

import torch

from rl_router.policies.masking import masked_logits

# A finite stand-in for -inf: softmax still gives invalid actions probability exactly 0, while
# ``0 * log p`` stays finite in entropies (``0 * -inf`` would be NaN).


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    dones: torch.Tensor,
    last_value: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al., 2016) over a rollout.

    ``dones[t]`` marks that the episode ended *at* step ``t`` (after ``rewards[t]``), so nothing is
    bootstrapped across it. A truncated episode's bootstrap value belongs in ``rewards[t]``
    (the trainer adds ``gamma * V(final_obs)`` there).

    Args:
        rewards: ``[T, N]`` reward received after the action at step ``t``.
        values: ``[T, N]`` value estimates ``V(s_t)``.
        dones: ``[T, N]`` 1.0 where the episode ended at step ``t``, else 0.0.
        last_value: ``[N]`` value of the observation after the last step (ignored where it ended).
        gamma: discount factor.
        lam: GAE lambda (0: one-step TD, 1: Monte-Carlo returns minus values).

    Returns:
        ``(advantages, returns)``, both ``[T, N]``, with ``returns = advantages + values``.

    Example (one-step episodes, as in router envs: the advantage is ``r - V``):

    >>> adv, ret = compute_gae(torch.tensor([[1.0], [0.0]]), torch.tensor([[0.25], [0.5]]),
    ...                        torch.ones(2, 1), torch.tensor([9.0]), gamma=0.99, lam=0.95)
    >>> adv.flatten().tolist(), ret.flatten().tolist()
    ([0.75, -0.5], [1.0, 0.0])
    """
    if rewards.shape != values.shape or rewards.shape != dones.shape:
        raise ValueError(f"rewards {rewards.shape}, values {values.shape}, dones {dones.shape} must match")
    advantages = torch.zeros_like(rewards)
    next_advantage = torch.zeros_like(last_value)
    next_value = last_value
    for t in reversed(range(rewards.shape[0])):
        not_done = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_value * not_done - values[t]
        next_advantage = delta + gamma * lam * not_done * next_advantage
        advantages[t] = next_advantage
        next_value = values[t]
    return advantages, advantages + values


def group_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """Each reward minus the mean reward of its group: the baseline of GRPO, for one-step episodes.

    Sub-envs ``g * group_size .. (g + 1) * group_size - 1`` answer the same query at every step, so
    their mean reward is a baseline that knows the query's difficulty without a critic. A group of
    one has advantage 0 (no comparison to learn from).

    Args:
        rewards: ``[T, N]``; ``N`` must be a multiple of ``group_size``.
        group_size: sub-envs per query.

    >>> group_advantages(torch.tensor([[1.0, 0.0, 0.5, 0.5]]), 2).tolist()
    [[0.5, -0.5, 0.0, 0.0]]
    """
    steps, n = rewards.shape
    if group_size < 1 or n % group_size:
        raise ValueError(f"group_size={group_size} does not divide the {n} sub-envs")
    grouped = rewards.reshape(steps, n // group_size, group_size)
    return (grouped - grouped.mean(dim=-1, keepdim=True)).reshape(steps, n)


def normalize_advantages(adv: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Zero mean, unit standard deviation over the batch; a single element only gets centred.

    >>> normalize_advantages(torch.tensor([1.0, 2.0, 3.0])).tolist()
    [-1.0, 0.0, 1.0]
    """
    if adv.numel() < 2:
        return adv - adv.mean()
    return (adv - adv.mean()) / (adv.std() + eps)


def clipped_policy_loss(
    new_logp: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor, clip: float
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """PPO's clipped surrogate objective, as a loss to minimise.

    Args:
        new_logp: ``[B]`` log-probabilities of the taken actions under the current policy.
        old_logp: ``[B]`` the same under the policy that collected the rollout.
        adv: ``[B]`` advantages.
        clip: epsilon; the ratio is clipped to ``[1 - clip, 1 + clip]``.

    Returns:
        ``(loss, clip_frac, approx_kl)``: scalar loss; the share of samples whose ratio lies
        outside ``1 ± clip``; and the ``(r - 1) - log r`` estimator of ``KL(old || new)``
        (Schulman's "k3"), both detached.

    >>> same = torch.tensor([0.0])
    >>> loss, frac, kl = clipped_policy_loss(same, same, torch.tensor([2.0]), clip=0.2)
    >>> loss.item(), frac.item(), kl.item()
    (-2.0, 0.0, 0.0)
    """
    log_ratio = new_logp - old_logp
    ratio = log_ratio.exp()
    unclipped = -adv * ratio
    clipped = -adv * torch.clamp(ratio, 1.0 - clip, 1.0 + clip)
    loss = torch.max(unclipped, clipped).mean()
    with torch.no_grad():
        clip_frac = ((ratio - 1.0).abs() > clip).float().mean()
        approx_kl = ((ratio - 1.0) - log_ratio).mean()
    return loss, clip_frac, approx_kl


def clipped_value_loss(
    new_v: torch.Tensor, old_v: torch.Tensor, returns: torch.Tensor, clip: float | None
) -> torch.Tensor:
    """Value loss ``0.5 * (V - R)^2``, pessimistically clipped around the rollout's values.

    Args:
        new_v: ``[B]`` current value predictions.
        old_v: ``[B]`` values predicted during the rollout.
        returns: ``[B]`` regression targets.
        clip: keep ``new_v`` within ``old_v ± clip`` (the larger of the clipped and unclipped
            errors is used, as in CleanRL and OpenAI baselines); None: plain squared error.

    >>> clipped_value_loss(torch.tensor([3.0]), torch.tensor([0.0]), torch.tensor([3.0]), clip=1.0).item()
    2.0
    """
    unclipped = (new_v - returns) ** 2
    if clip is None:
        return 0.5 * unclipped.mean()
    v_clipped = old_v + torch.clamp(new_v - old_v, -clip, clip)
    return 0.5 * torch.max(unclipped, (v_clipped - returns) ** 2).mean()


def entropy_masked(logits: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Entropy ``[B]`` of the categorical over valid actions only (masked ones contribute 0).

    >>> entropy_masked(torch.zeros(1, 4), torch.tensor([[1, 1, 0, 0]])).item()  # log 2
    0.6931471824645996
    """
    logits = masked_logits(logits, mask)
    logp = torch.log_softmax(logits, dim=-1)
    plogp = logp.exp() * logp
    if mask is not None:
        plogp = torch.where(mask.to(torch.bool), plogp, torch.zeros_like(plogp))
    return -plogp.sum(dim=-1)


def explained_variance(pred: torch.Tensor, target: torch.Tensor) -> float:
    """``1 - Var(target - pred) / Var(target)``: 1 is a perfect critic, 0 no better than a constant.

    NaN when the target is constant (e.g. a bandit that always pays the same).

    >>> explained_variance(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.0]))
    1.0
    """
    var = target.var()
    if target.numel() < 2 or var == 0:
        return float("nan")
    return float(1.0 - (target - pred).var() / var)
