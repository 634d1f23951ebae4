"""Which games separate the two tiers? Always-small vs always-large success per game, on train seeds.

Launch: nice -n 10 .venv/bin/python scripts/agent_steps_boundary.py --seeds 4 --max-steps 10 [--pool fake]

Plays the boundary policies of ``agent_steps`` (every step to one tier, no budget in the way) on the
first ``--seeds`` train-fold seeds of each easy TextWorldExpress game, with the zoo pool
(``conf/pool/local.yaml``: SmolLM2-135M and Qwen2.5-Coder-0.5B on vLLM-CPU; answers cached by
content, so a rerun is fast). Writes ``<out>/boundary.json`` and prints one line per game, last
``games_separating=<names>``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from omegaconf import OmegaConf

from envs.agent_steps import AgentStepsEnv
from envs.games.tasks import game_task_splits
from rl_router.pool import PoolConfig, build_pool
from rl_router.rollout.agent_episodes import always, play_episodes, summarize

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4, help="train seeds per game")
    parser.add_argument("--max-steps", type=int, default=10, help="agent steps per episode")
    parser.add_argument("--pool", default="local", help="a conf/pool option")
    parser.add_argument("--num-envs", type=int, default=10, help="episodes played together")
    parser.add_argument("--out", default="outputs/agent_steps_boundary")
    args = parser.parse_args()

    option = OmegaConf.load(ROOT / f"conf/pool/{args.pool}.yaml")
    option.pop("defaults", None)
    pool_cfg = OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(PoolConfig), option))
    rows = game_task_splits(train_per_game=args.seeds, validation_per_game=0, test_per_game=0).train
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    options = {"max_steps": args.max_steps, "budget": {"low": args.max_steps, "high": args.max_steps}}
    started = time.time()
    with build_pool(pool_cfg, log_file=out / "run.log") as pool:
        names = [d.name for d in pool.descriptors]
        results = {}
        for tier, name in enumerate(names):
            t0 = time.time()
            records = play_episodes(
                lambda: AgentStepsEnv(pool, rows, **options), rows, always(tier), args.num_envs
            )
            results[name] = records
            print(f"# {name}: {len(records)} episodes in {time.time() - t0:.0f}s", flush=True)
    table = {}
    for game in dict.fromkeys(r["game"] for r in rows):
        table[game] = {n: summarize([r for r in results[n] if r["game"] == game]) for n in names}
    (out / "boundary.json").write_text(
        json.dumps({"table": table, "records": results, "args": vars(args)}, indent=1)
    )
    small, large = names[0], names[-1]
    separating = []
    for game, row in table.items():
        s, lg = row[small], row[large]
        print(
            f"{game:11s} small_sr={s['success']:.2f} large_sr={lg['success']:.2f} "
            f"small_invalid={s['invalid_share']:.2f} large_invalid={lg['invalid_share']:.2f} "
            f"small_usd={s['cost_usd']:.2e} large_usd={lg['cost_usd']:.2e}"
        )
        if lg["success"] - s["success"] > 0:
            separating.append(game)
    print(f"# total {time.time() - started:.0f}s")
    print(f"games_separating={','.join(separating) or 'none'}")


if __name__ == "__main__":
    main()
