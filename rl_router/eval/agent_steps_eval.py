"""``agent_steps`` evaluation: a tier router against the boundary policies and heuristics, under caps.

Every policy plays the same held-out task rows through :func:`rl_router.rollout.agent_episodes.play_episodes`
(one pool call per step for all live episodes): always-small, always-large, random, First-Large-k
for every k up to the step limit, and the router. Then the router and the fixed baselines play again
under each hard cap of ``caps`` (a fixed cap per run). Writes ``report.json``, ``report.md`` and
``pareto.png`` (success against dollars per task, First-Large-k as a curve) into ``out_dir``.

The router is either a compact policy (a :data:`Policy`, played by :func:`play_episodes` like the
baselines) or an LLM router (``env.mode=text``, :func:`llm_router_player`: greedy episodes through
the rollout driver, the same code GRPO trains with, seeded like the baselines' episodes).

The bench line (:func:`bench_line`) compares the router with always-large (success gap, cost ratio)
and with First-Large at the router's cost: the largest k whose First-Large-k costs no more than the
router (k=0, always-small, when none does).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rewards.hard_budget import HardBudgetConfig
from rl_router.eval.pareto import plot_pareto
from rl_router.rollout.agent_episodes import (
    Policy,
    always,
    first_large,
    play_episodes,
    random_policy,
    summarize,
)

REPORT_JSON, REPORT_MD, PARETO_PNG = "report.json", "report.md", "pareto.png"
# An LLM router's episodes under a budget config (None: the trained range): the episode records.
RouterPlayer = Callable[[HardBudgetConfig | None], list[dict[str, Any]]]


def torch_policy(policy: torch.nn.Module) -> Policy:
    """A trained compact policy as a greedy tier policy (argmax over the tiers the mask allows)."""

    def act(obs: Any, info: Mapping[str, Any], env: Any) -> int:
        x = torch.as_tensor(np.asarray(obs, dtype=np.float32))[None]
        mask = torch.as_tensor(np.asarray(info["action_mask"], dtype=bool))[None]
        with torch.no_grad():
            logits, _ = policy(x, mask)
        return int(logits.argmax(-1).item())

    return act


def llm_router_player(
    model: Any,
    tokenizer: Any,
    make_env: Callable[[HardBudgetConfig | None], Callable[[Sequence[Mapping[str, Any]]], Any]],
    rows: Sequence[Mapping[str, Any]],
    *,
    max_turn_tokens: int,
    max_completion_tokens: int,
    batch_size: int = 8,
    seed: int = 0,
) -> RouterPlayer:
    """An LLM router's greedy episodes on ``rows``, ``batch_size`` at a time, through the rollout driver.

    Args:
        model, tokenizer: The router (a transformers causal LM) and its tokenizer.
        make_env: ``make_env(budget)`` -> the env factory's ``make(rows)`` (text mode).
        rows: The held-out task rows; episode ``j`` plays ``rows[j]`` with reset seed ``seed + j``,
            as :func:`play_episodes` seeds the baselines (the same budget draws).
        max_turn_tokens, max_completion_tokens: The trained router's turn and trajectory budgets.
        batch_size: Episodes generated together (one generation and one pool call per step).
    """
    from envs.agent_steps import ROUTER_STOPS
    from rl_router.generation import HFTurnGenerator
    from rl_router.rollout.driver import RolloutDriver, task_prompt

    generate = HFTurnGenerator(model, tokenizer, sample=False, stops=ROUTER_STOPS)

    def play(budget: HardBudgetConfig | None) -> list[dict[str, Any]]:
        driver = RolloutDriver(make_env(budget), rows, tokenizer, max_turn_tokens, max_completion_tokens)
        records: list[dict[str, Any]] = []
        for start in range(0, len(rows), batch_size):
            part = rows[start : start + batch_size]
            seeds = [seed + start + j for j in range(len(part))]
            result = driver.play([task_prompt(r) for r in part], generate, seeds=seeds)
            records += [{**e, "repeat": 0} for e in result.episodes]
        return records

    return play


FIRST_LARGE_KS = (1, 2, 3, 5, 8, 13, 21, 34)  # First-Large-k curve points (k < the step limit)


def baselines(num_tiers: int, max_steps: int, seed: int = 0) -> dict[str, Policy]:
    """always-small, always-large, random and First-Large-k (``FIRST_LARGE_KS`` below ``max_steps``)."""
    small, large = 0, num_tiers - 1
    out = {"always_small": always(small), "always_large": always(large), "random": random_policy(seed)}
    out |= {f"first_large_{k}": first_large(k, small, large) for k in FIRST_LARGE_KS if k < max_steps}
    return out


def first_large_at(report: Mapping[str, Mapping[str, float]], cost: float) -> tuple[int, Mapping[str, float]]:
    """First-Large at ``cost``: the largest k whose mean cost is at most ``cost`` (0: always-small)."""
    best = (0, report["always_small"])
    for name, row in report.items():
        if name.startswith("first_large_") and row["cost_usd"] <= cost + 1e-15:
            k = int(name.rsplit("_", 1)[1])
            if k > best[0]:
                best = (k, row)
    return best


def bench_line(policies: Mapping[str, Mapping[str, float]], over_budget: int) -> str:
    """The bench's last line: success rates, router cost relative to always-large, episodes over budget."""
    router, large = policies["router"], policies["always_large"]
    k, matched = first_large_at(policies, router["cost_usd"])
    ratio = router["cost_usd"] / large["cost_usd"] if large["cost_usd"] > 0 else float("nan")
    return (
        f"always_small_sr={policies['always_small']['success']:.3f} always_large_sr={large['success']:.3f} "
        f"first_large_sr={matched['success']:.3f} random_sr={policies['random']['success']:.3f} "
        f"router_sr={router['success']:.3f} router_cost_ratio={ratio:.3f} over_budget={over_budget}"
    )


def evaluate_agent_steps(
    make_env: Callable[[HardBudgetConfig | None], Callable[[], Any]],
    rows: Sequence[Mapping[str, Any]],
    router: Policy | None,
    out_dir: str | Path,
    *,
    num_tiers: int,
    max_steps: int,
    budget: HardBudgetConfig,
    caps: Sequence[float] = (),
    num_envs: int = 8,
    seed: int = 0,
    router_player: RouterPlayer | None = None,
) -> dict[str, Any]:
    """Score ``router`` (None: baselines only) and the baselines on ``rows``; write the report.

    Args:
        make_env: ``make_env(budget)`` -> an env maker over ``rows`` (None: the trained budget range).
        rows: The held-out task rows.
        router: The trained router's tier policy.
        out_dir: Where report.json / report.md / pareto.png go.
        num_tiers: Tiers of the pool (small = 0, large = the last).
        max_steps: The env's step limit (First-Large-k runs k < max_steps).
        budget: The budget config trained under (its kind, for the caps).
        caps: Fixed caps (in ``budget.kind``'s unit) to score under as well.
        num_envs: Episodes played together.
        seed: Seed of resets and of the random baseline.
        router_player: An LLM router's episodes (:func:`llm_router_player`), scored as ``router``
            (``router`` is then None).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    policies = baselines(num_tiers, max_steps, seed)
    if router is not None:
        policies["router"] = router
    records = {
        name: play_episodes(make_env(None), rows, p, num_envs, seed=seed) for name, p in policies.items()
    }
    if router_player is not None:
        records["router"] = router_player(None)
    summary = {name: summarize(recs) for name, recs in records.items()}
    by_game: dict[str, dict[str, Any]] = {}
    for game in dict.fromkeys(r["game"] for r in rows):
        by_game[game] = {n: summarize([r for r in recs if r["game"] == game]) for n, recs in records.items()}
    under_caps: dict[str, dict[str, Any]] = {}
    capped = [n for n in ("always_small", "always_large", "random", "router") if n in policies]
    for cap in caps:
        fixed = dataclasses.replace(budget, low=float(cap), high=float(cap))
        under_caps[f"{cap:g}"] = {
            n: summarize(play_episodes(make_env(fixed), rows, policies[n], num_envs, seed=seed))
            for n in capped
        }
        if router_player is not None:
            under_caps[f"{cap:g}"]["router"] = summarize(router_player(fixed))
    over = int(sum(s["over_budget"] for s in summary.values()))
    over += int(sum(s["over_budget"] for cap in under_caps.values() for s in cap.values()))
    report: dict[str, Any] = {
        "rows": len(rows),
        "budget_kind": budget.kind,
        "policies": summary,
        "by_game": by_game,
        "caps": under_caps,
        "over_budget": over,
    }
    if "router" in summary:
        report["bench"] = bench_line(summary, over)
    (out / REPORT_JSON).write_text(json.dumps(report, indent=1))
    (out / REPORT_MD).write_text(report_markdown(report))
    fl = sorted((int(n.rsplit("_", 1)[1]), s) for n, s in summary.items() if n.startswith("first_large_"))
    curve = ([s["cost_usd"] for _, s in fl], [s["success"] for _, s in fl])
    points = {
        n: (s["cost_usd"], s["success"]) for n, s in summary.items() if not n.startswith("first_large_")
    }
    plot_pareto(
        points,
        curve,
        out / PARETO_PNG,
        title="agent_steps: success vs cost (held-out tasks)",
        xlabel="dollars per task",
        ylabel="success rate",
        curve_label="First-Large-k",
    )
    return report


def report_markdown(report: Mapping[str, Any]) -> str:
    """``report.md``: one table of every policy, one per game, one per cap."""
    lines = [f"# agent_steps evaluation ({report['rows']} held-out tasks)", ""]

    def table(rows: Mapping[str, Mapping[str, float]]) -> list[str]:
        out = ["| policy | success | $ / task | steps | invalid | over budget |", "|---|---|---|---|---|---|"]
        for name, s in rows.items():
            out.append(
                f"| {name} | {s['success']:.3f} | {s['cost_usd']:.3g} | {s['steps']:.1f} | "
                f"{s['invalid_share']:.2f} | {s['over_budget']} |"
            )
        return out

    lines += table(report["policies"])
    if "bench" in report:
        lines += ["", f"`{report['bench']}`"]
    for game, rows in report["by_game"].items():
        lines += ["", f"## {game}", ""] + table(
            {n: s for n, s in rows.items() if not n.startswith("first_large_")}
        )
    for cap, rows in report["caps"].items():
        lines += ["", f"## cap {cap} ({report['budget_kind']})", ""] + table(rows)
    return "\n".join(lines) + "\n"


AGENT_STEPS_ENV = "envs.agent_steps.AgentStepsEnv"
TASK_ROWS = "envs.games.tasks.game_task_splits"


def run_agent_steps_eval(
    checkpoint: str | Path,
    out_dir: str | Path,
    split: str = "test",
    pool_cfg: Any = None,
    log_file: Path | None = None,
    trust_recorded_pool: bool = False,
) -> dict[str, Any]:
    """``rl-router eval`` of an agent_steps run: its newest checkpoint against the baselines on ``split``.

    A compact router's newest ``checkpoints/step_*``; an LLM router's (``env.mode=text``, trained by
    :mod:`rl_router.recipes.agent_steps_grpo`) ``router/`` folder, played greedily through the driver
    with the run's ``trainer.max_turn_tokens`` / ``max_completion_tokens``.

    The recorded config is read as data: the task rows are built by :func:`envs.games.tasks.game_task_splits`
    only (any other data target is refused), the env only through the env factory's schemas, the
    policy and pool only after :mod:`rl_router.trust`'s checks.
    """
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from envs.games.tasks import game_task_splits
    from rl_router import checkpoint as ckpt
    from rl_router.generation import load_model
    from rl_router.pool.build import build_pool_from
    from rl_router.rollout.env_factory import env_factory, env_schema
    from rl_router.run import ROUTER_DIR, load_run_config
    from rl_router.trust import UntrustedConfigError, check_recorded, check_recorded_pool

    run = load_run_config(checkpoint)
    where = f"{checkpoint} (recorded training config)"
    data = OmegaConf.to_container(run.data, resolve=True)
    if data.get("_target_") != TASK_ROWS:
        raise UntrustedConfigError(
            f"{where}: data._target_={data.get('_target_')!r}; agent_steps reads {TASK_ROWS}"
        )
    parts = game_task_splits(**data)
    rows = [r for p in (parts if split == "all" else [getattr(parts, split)]) for r in p]
    if pool_cfg is None:
        pool_cfg = OmegaConf.to_container(run.pool, resolve=False)
        if not trust_recorded_pool:
            check_recorded_pool(pool_cfg, "pool", where)
    env_cfg = env_schema(run.env)
    llm = env_cfg.mode == "text"
    router_dir = Path(checkpoint) / ROUTER_DIR
    latest = None if llm else ckpt.latest_checkpoint(checkpoint)
    if (llm and not (router_dir / "config.json").is_file()) or (not llm and latest is None):
        held = f"{ROUTER_DIR}/ (a trained LLM router)" if llm else "checkpoints/step_*"
        raise FileNotFoundError(f"{checkpoint} holds no checkpoint ({held})")
    seed = int(run.get("seed", 0))
    with build_pool_from(pool_cfg, log_file) as pool:
        names = [d.name for d in pool.descriptors]

        def make_rows_env(budget: HardBudgetConfig | None) -> Callable[[Sequence[Mapping[str, Any]]], Any]:
            options = env_cfg if budget is None else dataclasses.replace(env_cfg, budget=budget)
            return env_factory(options, pool=pool)

        def make_env(budget: HardBudgetConfig | None) -> Callable[[], Any]:
            options = env_cfg if budget is None else dataclasses.replace(env_cfg, budget=budget)
            make = env_factory(dataclasses.replace(options, mode="features"), pool=pool)  # tier indices
            return lambda: make(rows)

        router, player = None, None
        if llm:
            trainer = OmegaConf.to_container(run.trainer, resolve=True)
            model, tokenizer = load_model(router_dir)
            player = llm_router_player(
                model,
                tokenizer,
                make_rows_env,
                rows,
                max_turn_tokens=int(trainer["max_turn_tokens"]),
                max_completion_tokens=int(trainer["max_completion_tokens"]),
                batch_size=int(trainer.get("eval_batch_size", 8)),
                seed=seed,
            )
        else:
            policy_cfg = OmegaConf.to_container(run.policy, resolve=True)
            check_recorded(policy_cfg, "policy", where)
            probe = make_env(None)()
            obs_dim = int(probe.observation_space.shape[0])
            probe.close()
            policy = instantiate(policy_cfg, obs_dim=obs_dim, num_actions=len(names))
            ckpt.load_policy_weights(latest, policy)
            router = torch_policy(policy.eval())
        return evaluate_agent_steps(
            make_env,
            rows,
            router,
            out_dir,
            num_tiers=len(names),
            max_steps=env_cfg.max_steps,
            budget=env_cfg.budget,
            caps=env_cfg.eval_caps,
            seed=seed,
            router_player=player,
        )
