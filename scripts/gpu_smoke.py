"""The steps of scripts/gpu_smoke.sh, one per process: ``python scripts/gpu_smoke.py STEP [--cpu]``.

A tiny random Llama router over an in-process tokenizer (``tests/grpo_helpers.py``: nothing is
downloaded) and a fake candidate pool, so a step takes seconds once torch is loaded:

* ``env``: torch, the CUDA device, bf16 support, and the versions of what the steps import.
* ``hf_generate``: the HF generation path. :class:`rl_router.generation.HFTurnGenerator` on the
  router in bf16 on the GPU (sampled turns within their budgets; greedy turns reproducible), then
  :class:`rl_router.rollout.driver.RolloutDriver` episodes against the pool (env tokens masked).
* ``grpo_bf16``: two GRPO steps of TRL's ``GRPOTrainer`` with the project's rollout bridge,
  ``rl_router.trainers.grpo.grpo_args`` with ``bf16``, ``dtype=bfloat16``, gradient checkpointing
  and a KL term (a reference model), as ``experiment=router_r1`` sets them. Turns are scripted
  (one right answer, one format violation per group) so that advantages, and so gradients, are
  not zero.

``--cpu`` runs the same steps in float32 on the CPU: what a machine without a GPU can check.
Each step prints ``ok <step>: ...`` and exits 0, or raises.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import math
import tempfile
from pathlib import Path

import torch

QUESTIONS = ("What is the capital of France?", "What is six times seven?", "What is the capital of Peru?")


def device_and_dtype(cpu: bool) -> tuple[str, torch.dtype]:
    if cpu:
        return "cpu", torch.float32
    if not torch.cuda.is_available():
        raise RuntimeError("no CUDA device (use --cpu for the CPU check)")
    if not torch.cuda.is_bf16_supported():
        raise RuntimeError(f"{torch.cuda.get_device_name()} has no bf16 support")
    return "cuda", torch.bfloat16


def step_env(cpu: bool) -> str:
    names = ("torch", "transformers", "trl", "accelerate", "datasets", "gymnasium", "numpy")
    versions = {n: importlib.metadata.version(n) for n in names}
    if cpu:
        return f"cpu only; {versions}"
    device_and_dtype(cpu)
    props = torch.cuda.get_device_properties(0)
    return f"{props.name}, {props.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda}; {versions}"


def fake_env_maker(pool, tok):
    """``make_env(rows)`` as the GRPO recipe's env factory builds it (direct: no Hydra needed here)."""
    from envs.multi_llm_qa import MultiLLMQAEnv
    from rl_router.generation import token_counter

    count = token_counter(tok)
    return lambda rows: MultiLLMQAEnv(
        pool, rows, mode="multi_round", outcome="em", count_tokens=count, defer_cost=True
    )


def step_hf_generate(cpu: bool) -> str:
    from grpo_helpers import ROWS, fake_pool, tiny_model, tiny_tokenizer

    from rl_router.generation import HFTurnGenerator, chat_prompt_ids
    from rl_router.rollout.driver import RolloutDriver, tagged_prompt

    device, dtype = device_and_dtype(cpu)
    tok = tiny_tokenizer()
    model = tiny_model(tok).to(device=device, dtype=dtype).eval()
    contexts = [chat_prompt_ids(tok, [{"role": "user", "content": q}]) for q in QUESTIONS * 4]
    limits = [4, 8, 16, 32] * 3
    torch.manual_seed(0)
    sampled = HFTurnGenerator(model, tok, sample=True, chunk=5)(contexts, limits)
    assert len(sampled) == len(contexts), "one turn per context"
    assert all(0 < len(s.ids) <= lim for s, lim in zip(sampled, limits, strict=True)), "turn budgets"
    assert all(s.reason in ("stop", "eos", "length") for s in sampled)
    greedy = HFTurnGenerator(model, tok, sample=False)
    first, again = greedy(contexts[:3], [16] * 3), greedy(contexts[:3], [16] * 3)
    assert [s.ids for s in first] == [s.ids for s in again], "greedy turns differ between calls"

    pool = fake_pool()
    driver = RolloutDriver(fake_env_maker(pool, tok), ROWS, tok, 16, 128)
    prompts = [tagged_prompt(row, pool.descriptors, 4) for row in ROWS for _ in range(2)]
    result = driver.play(prompts, greedy)
    assert len(result.completion_ids) == len(prompts) and result.logprobs is None
    for ids, mask in zip(result.completion_ids, result.env_mask, strict=True):
        assert len(ids) == len(mask) and 0 < len(ids) <= 128 + 16 and set(mask) <= {0, 1}
    ended = sorted({", ".join(e["violations"]) or "answer" for e in result.episodes})
    where = f"{next(model.parameters()).device} {next(model.parameters()).dtype}"
    return (
        f"{len(sampled)} sampled turns within budget, greedy reproducible; {len(prompts)} driver episodes "
        f"(a random router: ended by {ended}); model on {where}"
    )


def step_grpo_bf16(cpu: bool) -> str:
    from grpo_helpers import (
        ROWS,
        ScriptedRouter,
        fake_pool,
        route_then_answer,
        tiny_model,
        tiny_tokenizer,
        warm_normalizer,
    )
    from trl import GRPOTrainer

    from rewards.combine import RouterR1Reward
    from rl_router.loggers import NullLogger
    from rl_router.rollout.driver import RolloutDriver
    from rl_router.trainers.grpo import (
        GRPOTrainerConfig,
        TRLRollout,
        grpo_args,
        grpo_dataset,
        metrics_callback,
        reward_functions,
    )

    device, dtype = device_and_dtype(cpu)

    class ScriptedRollout(TRLRollout):
        """The bridge with scripted turns: each group gets one right answer and one format violation."""

        @contextlib.contextmanager
        def generator(self, trainer):
            def script(question, turn, k):
                right = turn == 0 or k % 2 == 0
                return route_then_answer()(question, turn) if right else "<think>No.</think>"

            yield ScriptedRouter(self.driver.tokenizer, script)

    tok = tiny_tokenizer()
    pool = fake_pool()
    with tempfile.TemporaryDirectory() as tmp:
        model_dir = Path(tmp) / "tiny-router"
        tiny_model(tok).save_pretrained(model_dir)  # loaded by TRL, as the recipe loads trainer.model
        tok.save_pretrained(model_dir)
        cfg = GRPOTrainerConfig(
            model=str(model_dir), dtype="float32" if cpu else "bfloat16", lr=1e-3, max_steps=2,
            questions_per_step=2, num_generations=2, micro_batch_size=2, beta=0.001, max_turn_tokens=64,
            max_completion_tokens=512, gradient_checkpointing=True, use_cpu=cpu, bf16=not cpu,
            progress=False, checkpoint_every=2,
        )  # fmt: skip
        make_env = fake_env_maker(pool, tok)
        driver = RolloutDriver(make_env, ROWS, tok, cfg.max_turn_tokens, cfg.max_completion_tokens)
        rollout = ScriptedRollout(driver, warm_normalizer(), RouterR1Reward(alpha=0.6))
        bridge = metrics_callback(rollout, [d.name for d in pool.descriptors], NullLogger(), progress=False)
        funcs, _ = reward_functions()
        trainer = GRPOTrainer(
            model=cfg.model,
            reward_funcs=funcs,
            args=grpo_args(cfg, Path(tmp) / "checkpoints"),
            train_dataset=grpo_dataset(ROWS[:2], pool.descriptors, 4),
            processing_class=tok,
            rollout_func=rollout,
            callbacks=[bridge],
        )
        trainer.train()
        params = next(trainer.model.parameters())
        assert trainer.state.global_step == 2, f"{trainer.state.global_step} steps, not 2"
        where = f"{params.device} {params.dtype}"
        assert params.device.type == device and params.dtype == dtype, f"model on {where}"
        norms = [r["train/grad_norm"] for r in bridge.history if "train/grad_norm" in r]
        assert len(norms) == 2 and all(math.isfinite(n) and n > 0 for n in norms), f"grad norms {norms}"
        saved = (Path(tmp) / "checkpoints" / "checkpoint-2" / "rollout_state.json").is_file()
        assert saved, "no checkpoint with the cost window"
    peak = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else 0.0
    return f"2 steps on {where}, grad norms {[round(n, 4) for n in norms]}, peak {peak:.0f} MiB on the GPU"


STEPS = {"env": step_env, "hf_generate": step_hf_generate, "grpo_bf16": step_grpo_bf16}

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("step", choices=sorted(STEPS))
    parser.add_argument("--cpu", action="store_true", help="float32 on the CPU (no GPU here)")
    args = parser.parse_args()
    torch.manual_seed(0)
    print(f"ok {args.step}: {STEPS[args.step](args.cpu)}")
