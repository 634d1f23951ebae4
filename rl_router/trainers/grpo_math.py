"""Pure helpers of the GRPO bridge: group checks and episode statistics.

Nothing here touches a model, a tokenizer object or TRL; :mod:`rl_router.trainers.grpo` composes
these functions and the tests check each one on small hand-made inputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class GroupOrderError(RuntimeError):
    """A GRPO group (``num_generations`` consecutive samples) mixes questions.

    GRPO's advantage compares samples of one question with each other; a group holding several
    questions compares unrelated rewards (Router-R1's GRPO grouped questions that shared a
    per-dataset index). Raised whatever Python's ``-O`` flag says, unlike ``assert``.
    """


def check_groups(question_ids: Sequence[Any], num_generations: int) -> None:
    """Check that each block of ``num_generations`` consecutive samples shares one question id.

    Args:
        question_ids: One id per sample, in the order the trainer groups them.
        num_generations: GRPO's group size ``G``.

    Raises:
        GroupOrderError: The count is not a multiple of ``G``, or a group mixes questions.

    Example:
        >>> check_groups(["nq/1", "nq/1", "hotpotqa/1", "hotpotqa/1"], 2)
        >>> check_groups(["nq/1", "hotpotqa/1", "nq/1", "hotpotqa/1"], 2)
        Traceback (most recent call last):
        ...
        rl_router.trainers.grpo_math.GroupOrderError: group 0 (samples 0-1) mixes questions ...
    """
    if num_generations < 1:
        raise ValueError(f"num_generations={num_generations}: a group holds at least one sample")
    if len(question_ids) % num_generations:
        raise GroupOrderError(
            f"{len(question_ids)} samples do not split into groups of num_generations={num_generations}"
        )
    for start in range(0, len(question_ids), num_generations):
        group = question_ids[start : start + num_generations]
        if len(set(group)) != 1:
            raise GroupOrderError(
                f"group {start // num_generations} (samples {start}-{start + num_generations - 1}) mixes "
                f"questions {sorted(set(map(str, group)))}; GRPO groups must repeat one question "
                "num_generations times in a row (TRL's RepeatSampler order)"
            )


def exploration_prefixes(num_samples: int, num_generations: int, openings: Sequence[str]) -> list[str | None]:
    """Which samples of each group start with a forced route: sample ``j`` of every group opens with
    ``openings[j]`` for ``j < len(openings)``; the group's other samples are the policy's own.

    A router that (almost) never samples a candidate gets no GRPO gradient about it: every sample of
    a group routes alike, so every advantage is 0, whatever the reward or the budget's ``lam``
    says. One forced opening per candidate in every group makes each group compare the candidates
    on its question.

    Raises:
        ValueError: A group is too small to hold every opening and one free sample.

    Example:
        >>> exploration_prefixes(8, 4, ["<search>a:", "<search>b:"])
        ['<search>a:', '<search>b:', None, None, '<search>a:', '<search>b:', None, None]
    """
    if not openings:
        return [None] * num_samples
    if num_generations <= len(openings):
        raise ValueError(
            f"trainer.num_generations={num_generations} with {len(openings)} forced routes: a group needs "
            "at least one free sample besides one forced route per candidate; raise num_generations"
        )
    return [
        openings[j % num_generations] if j % num_generations < len(openings) else None
        for j in range(num_samples)
    ]


def episode_stats(episodes: Sequence[Mapping[str, Any]], model_names: Sequence[str]) -> dict[str, float]:
    """Means over finished episodes (the env's ``info["episode"]`` records), keyed for logging.

    Keys: ``rollout/format_valid``, ``rollout/accuracy``, ``rollout/cost_usd``, ``rollout/calls``,
    ``rollout/truncated`` and ``rollout/route_share/<model>`` (the share of all routes that went
    to each model; 0 when no episode routed).

    Example:
        >>> eps = [{"format_ok": True, "correct": 1.0, "cost_usd": 2e-6, "calls": {"a": 2}},
        ...        {"format_ok": False, "correct": 0.0, "cost_usd": 0, "calls": {"b": 1}, "truncated": True}]
        >>> stats = episode_stats(eps, ["a", "b"])
        >>> stats["rollout/format_valid"], stats["rollout/calls"], stats["rollout/route_share/a"]
        (0.5, 1.5, 0.6666666666666666)
    """
    if not episodes:
        return {}
    n = len(episodes)
    routes = {name: sum(e["calls"].get(name, 0) for e in episodes) for name in model_names}
    total_routes = sum(routes.values())
    out = {
        "rollout/format_valid": sum(bool(e["format_ok"]) for e in episodes) / n,
        "rollout/accuracy": sum(float(e["correct"]) for e in episodes) / n,
        "rollout/cost_usd": sum(float(e["cost_usd"]) for e in episodes) / n,
        "rollout/calls": sum(sum(e["calls"].values()) for e in episodes) / n,
        "rollout/truncated": sum(bool(e.get("truncated", False)) for e in episodes) / n,
    }
    for name, count in routes.items():
        out[f"rollout/route_share/{name}"] = count / total_routes if total_routes else 0.0
    return out
