"""Pure helpers of the GRPO recipe: group checks, where a router turn ends, and episode statistics.

Nothing here touches a model, a tokenizer object or TRL; :mod:`rl_router.trainers.grpo` composes
these functions and the tests check each one on small hand-made inputs.

Token lists are plain ``list[int]``. A *turn* is the router's text between two env messages; it ends
at the first of: a stop string (``</search>`` or ``</answer>``), an end-of-sequence token, or its
token budget.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Mapping, Sequence
from typing import Any

from rl_router.pool.types import Request

# A router turn ends right after one of these (Router-R1's actions; the env parses the turn).
STOP_STRINGS = ("</search>", "</answer>")


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


def turn_end(
    ids: Sequence[int],
    limit: int,
    eos_ids: Container[int],
    decode: Callable[[Sequence[int]], str],
    stop_strings: Sequence[str] = STOP_STRINGS,
) -> tuple[int, str]:
    """Where a generated router turn ends: ``(length to keep, reason)``.

    The reason is ``"stop"`` (the kept tokens end in a stop string), ``"eos"`` (the last kept token
    is an end-of-sequence token) or ``"length"`` (the turn used its whole budget without either).
    Tokens after the end are padding or beyond this episode's budget. A stop string found before the
    first EOS wins: a batched ``generate`` pads finished rows with the pad token, which is often the
    EOS token itself.

    Args:
        ids: The generated tokens of one row (no prompt), possibly padded at the end.
        limit: This episode's token budget for the turn.
        eos_ids: End-of-sequence token ids.
        decode: Token ids to text (the router tokenizer's decode).
        stop_strings: Strings that end a turn.

    Example (characters as tokens, ``0`` as EOS/pad):
        >>> decode = lambda ids: "".join(chr(i) for i in ids if i)
        >>> ids = [ord(c) for c in "<a>x</answer>"] + [0, 0]
        >>> turn_end(ids, limit=20, eos_ids={0}, decode=decode)
        (13, 'stop')
        >>> turn_end([ord("h"), ord("i"), 0, 0], limit=20, eos_ids={0}, decode=decode)
        (3, 'eos')
        >>> turn_end([ord(c) for c in "hello"], limit=3, eos_ids={0}, decode=decode)
        (3, 'length')
    """
    ids = list(ids[:limit])
    first_eos = next((i for i, t in enumerate(ids) if t in eos_ids), None)
    body = ids if first_eos is None else ids[:first_eos]
    if any(s in decode(body) for s in stop_strings):
        # The shortest prefix whose text holds a stop string (its text only grows with the prefix).
        lo, hi = 0, len(body)  # decode(body[:lo]) has no stop string, decode(body[:hi]) has one
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if any(s in decode(body[:mid]) for s in stop_strings):
                hi = mid
            else:
                lo = mid
        return hi, "stop"
    if first_eos is not None:
        return first_eos + 1, "eos"
    return len(ids), "length"


def sub_query(row: Mapping[str, Any]) -> str:
    """A row's question on one line: the sub-query SFT trajectories route and single candidates answer.

    >>> sub_query({"question": "  What is   the capital of France? "})
    'What is the capital of France?'
    """
    return " ".join(str(row["question"]).split())


def direct_request(model: str, row: Mapping[str, Any]) -> Request:
    """``model`` asked a row's question directly, worded as a router's route would word it
    (:func:`sub_query`), so SFT trajectories, single-candidate baselines and router episodes share
    response-cache entries."""
    return Request(model, ({"role": "user", "content": sub_query(row)},))


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
