"""``rl-router calibrate`` of a ``memory_tiers`` tier router: one logit offset per tier, fitted by replay.

A tier router decides every module by ``argmax(log p + offsets)`` with one offset per tier (Low,
Mid, High) shared by the five modules (:class:`~rl_router.routers.memory_tiers.MemoryTiersRouter`).
Targets, on the calibration rows (the router's LoCoMo training split):

* ``target.share=<x> [target.model=<tier>]``: the share of module decisions made at that tier
  (default: the dearest, High);
* ``target.cost_per_query=<usd>``: mean module dollars per query.

The offsets follow the policy routers' forms (:mod:`rl_router.routers.calibration`): a share target
moves the target tier's offset alone, a cost target sets the offsets to ``-lambda * c`` with ``c``
each tier's mean module dollars per decision (read from three fixed replays, all-Low / all-Mid /
all-High, on the calibration questions). Unlike a query router's rows, a decision's observation
depends on the tiers chosen upstream (a module reads what the previous ones wrote), so offsets fitted
on one replay's decisions move the decisions they were fitted on (a saturated router's by a lot). So
the one number (the offset, or ``lambda``) is found by bisection on greedy replays of the calibration
questions, each measured on the real ledger: ``rounds`` halvings of a range past every margin the raw
replay shows, keeping the replayed point closest to the target. What is reached is that replay's.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from envs.memory_modules import MODULES, TIERS
from rl_router.eval.memory_tiers import evaluate, locomo_rows
from rl_router.policies.memory_tiers import CalibratedTiers, FixedTiers
from rl_router.rollout.episodes import play_episodes
from rl_router.routers.calibration import Calibration, share_margins
from rl_router.routers.memory_tiers import MemoryTiersRouter

MakeEnvs = Callable[[Sequence[Any], int], list[Any]]


def replay(
    make_envs: MakeEnvs, rows: Sequence[Any], router: MemoryTiersRouter, offsets: np.ndarray, batch: int
) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """Greedy episodes of every row at ``offsets``.

    Returns:
        ``(log_probs [n * 5, 3], choices [n * 5], records)``: the raw policy's log p of each decision
        (query-major, modules in order), the tier taken, and each episode's record.
    """
    policy = CalibratedTiers(router.policy, offsets.tolist()).eval()
    envs = make_envs(rows, min(batch, len(rows)))
    log_probs, choices, records = [], [], []
    for start in range(0, len(rows), len(envs)):
        live = envs[: min(len(envs), len(rows) - start)]
        options = [{"index": start + i} for i in range(len(live))]
        with torch.no_grad():
            played = play_episodes(live, policy, greedy=True, options=options)
        horizon, n = played["actions"].shape
        obs = played["obs"].transpose(0, 1).reshape(n * horizon, -1)  # [n * 5, D], query-major
        log_probs.append(router.log_probs(obs.numpy()))
        choices.append(played["actions"].transpose(0, 1).reshape(-1).numpy())
        records += [dict(info["episode"]) for info in played["infos"]]
    return np.concatenate(log_probs), np.concatenate(choices), records


def tier_dollars(make_envs: MakeEnvs, rows: Sequence[Any], batch: int) -> np.ndarray:
    """``[n * 5, 3]``: each decision's module dollars at each tier, from the all-Low/Mid/High replays."""
    out = np.zeros((len(rows) * len(MODULES), len(TIERS)))
    for t in range(len(TIERS)):
        records = evaluate(make_envs, rows, FixedTiers([t] * len(MODULES)), batch_size=batch)
        out[:, t] = [r["module_usd"][m] for r in records for m in MODULES]
    return out


def fit_tier_calibration(
    router: MemoryTiersRouter,
    make_envs: MakeEnvs,
    rows: Sequence[Any],
    source: str,
    share: float | None = None,
    model: str | None = None,
    cost_per_query: float | None = None,
    batch: int = 32,
    rounds: int = 18,
) -> Calibration:
    """The calibration of ``router`` that meets one target on ``rows`` (see the module docstring).

    Raises:
        ValueError: neither or both targets, a tier name that is not one, or a cost below all-Low's.
    """
    if (share is None) == (cost_per_query is None):
        raise ValueError("give exactly one target: target.share=<0..1> or target.cost_per_query=<usd>")
    tiers = list(TIERS)
    cost_model = None
    if share is not None:
        model = model or tiers[-1]
        if model not in tiers:
            raise ValueError(f"target.model={model!r} is not a tier of this router: use one of {tiers}")
        target: dict[str, Any] = {"share": share, "model": model}
    else:
        assert cost_per_query is not None
        dollars = tier_dollars(make_envs, rows, batch)
        expected = dollars.mean(axis=0)  # each tier's mean dollars per decision
        floor = float(dollars.min(axis=1).sum()) / len(rows)
        if cost_per_query < floor:
            raise ValueError(
                f"cost_per_query={cost_per_query:g} is below ${floor:g} per query, what the cheapest tier "
                "of every module costs on the calibration questions: no routing reaches it"
            )
        target = {"cost_per_query": cost_per_query}

    played: dict[float, tuple[float, np.ndarray, list[dict[str, Any]]]] = {}

    def offsets_at(x: float) -> np.ndarray:
        """Share: ``x`` on the target tier's offset; cost: ``lambda = x``, offsets ``-x * c``."""
        if share is not None:
            return x * np.eye(len(tiers))[tiers.index(model)]
        return -x * expected

    def play(x: float) -> np.ndarray:
        """Replay at ``x`` once (kept in ``played``); returns the raw policy's log p of its decisions."""
        log_probs, choices, records = replay(make_envs, rows, router, offsets_at(x), batch)
        value = (
            float(np.mean(choices == tiers.index(model)))
            if share is not None
            else -float(np.mean([r["cost_usd"] for r in records]))
        )
        played[x] = (value, choices, records)
        return log_probs

    def measure(x: float) -> float:
        """What a replay at ``x`` reaches, signed so that it grows with ``x``."""
        if x not in played:
            play(x)
        return played[x][0]

    # the raw replay: its margins bound the search, and it is the bisection's first midpoint (0)
    log_probs = play(0.0)

    goal = share if share is not None else -cost_per_query
    if share is not None:  # past every margin seen at the raw replay's states, and one nat more
        span = float(np.abs(share_margins(log_probs, tiers.index(model))).max()) + 1.0
    else:  # as fit_cost_offsets: every decision to a cheapest (dearest) tier at +span (-span)
        span = float(np.ptp(log_probs)) / float(np.diff(np.unique(expected)).min()) + 1.0
    lo, hi = -span, span
    for _ in range(rounds):
        mid = (lo + hi) / 2.0
        if measure(mid) < goal:
            lo = mid
        else:
            hi = mid
    best = min((lo, hi, *played), key=lambda x: (abs(measure(x) - goal), abs(x)))
    _, choices, records = played[best]
    offsets, lam = offsets_at(best), best
    if cost_per_query is not None:
        cost_model = {
            "lambda": float(lam),
            "expected_dollars": {t: float(c) for t, c in zip(tiers, expected, strict=True)},
            "source": "mean module dollars per decision of all-Low / all-Mid / all-High on these rows",
        }
    return Calibration.fitted(
        target=target,
        models=tiers,
        offsets=offsets,
        weights_sha256=router.weights_digest(),
        choices=choices,
        source=f"{source}; {len(choices)} module decisions",
        rows=len(rows),
        dollars_per_query=float(np.mean([r["cost_usd"] for r in records])),
        cost_model=cost_model,
    )


def calibrate_memory_tiers(
    router: MemoryTiersRouter,
    target: Any,
    rows: int | None,
    pool_cfg: Any = None,
    trust_recorded_pool: bool = False,
) -> Calibration:
    """``rl-router calibrate`` of a tier router on its training split (a seed-0 subset of ``rows``).

    Args:
        router: the tier router (its calibration, if any, is not used: offsets apply to raw log p).
        target: ``share``, ``model`` and ``cost_per_query`` (``calibrate``'s ``target``).
        rows: how many training questions (None: all).
        pool_cfg: a pool option serving the router's tiers; None: the recorded one, after
            :mod:`rl_router.trust`'s checks (``trust_recorded_pool`` skips the endpoint check).
    """
    from rl_router.pool.build import build_pool_from
    from rl_router.rollout.episodes import EnvMaker
    from rl_router.trust import check_recorded_pool

    where = f"{router.checkpoint} (recorded training config)"
    train = locomo_rows(router.training["data"], "train", where)
    n = len(train)
    if rows is not None and rows < n:
        keep = np.sort(np.random.default_rng(0).choice(n, rows, replace=False))
        train, which = [train[int(i)] for i in keep], f"a seed-0 random subset of its {n} questions"
    else:
        which = "every question"
    if pool_cfg is None:
        pool_cfg = router.training.get("pool")
        if pool_cfg is None:
            raise ValueError(f"{where} records no pool: give pool=<option> serving the router's tiers")
        if not trust_recorded_pool:
            check_recorded_pool(pool_cfg, "pool", where)
    batch = int((router.training.get("trainer") or {}).get("batch_episodes", 32))
    with build_pool_from(pool_cfg) as pool:
        make = EnvMaker(router.training["env"], pool)
        return fit_tier_calibration(
            router,
            make.eval_envs,
            train,
            f"LoCoMo training split, {which}",
            share=target.share,
            model=target.model,
            cost_per_query=target.cost_per_query,
            batch=batch,
        )
