"""`experiment=router_r1` builds: its pool (six priced candidates over HTTP), data and TRL trainer config.

No weights are loaded: the candidates answer from a loopback OpenAI-compatible server
(`pool=router_r1_api`), the benchmarks come from a local FlashRAG-layout mirror, and TRL's
``GRPOConfig`` is built as the GRPO trainer builds it. The vLLM pool (`pool=router_r1`) is checked as
a typed config only: starting its engines needs 17 GPUs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hydra.utils import instantiate

from rl_router.config import typed
from rl_router.data.qa import ROUTER_R1_EVAL_SPLITS
from rl_router.pool.types import Request
from rl_router.recipes.llm_router_grpo import load_splits
from rl_router.trainers.grpo import grpo_args, grpo_dataset

# Router-R1's prices, $ per 1M tokens (DESIGN.md section 2.1, from the Router-R1 paper).
PRICES = {
    "qwen2.5-7b-instruct": 0.30,
    "llama-3.1-8b-instruct": 0.18,
    "llama-3.1-70b-instruct": 0.88,
    "mistral-7b-instruct": 0.20,
    "mixtral-8x22b-instruct": 1.20,
    "gemma-2-27b-it": 0.80,
}


def write_mirror(root: Path) -> Path:
    """A FlashRAG_datasets-style folder: train splits of NQ and HotpotQA, eval splits of all seven."""
    files = {("nq", "train"): 12, ("hotpotqa", "train"): 12}
    files.update({(name, split): 3 for name, split in ROUTER_R1_EVAL_SPLITS.items()})
    for (name, split), n in files.items():
        path = root / name / f"{split}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = [
            {"id": f"{split}_{i}", "question": f"{name} question {i}?", "golden_answers": [f"answer {i}"]}
            for i in range(n)
        ]
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


@pytest.fixture
def cfg(compose, openai_server, tmp_path, monkeypatch):
    monkeypatch.setenv("ROUTER_R1_BASE_URL", openai_server.url)
    monkeypatch.setenv("ROUTER_R1_API_KEY", "sk-loopback")
    mirror = write_mirror(tmp_path / "FlashRAG_datasets")
    cache = tmp_path / "cache"
    overrides = ["experiment=router_r1", "pool=router_r1_api", f"data.local_dir={mirror}", "data.limit=5"]
    caches = [f"data.cache_dir={cache}", f"+trainer.eval_data.cache_dir={cache}", f"pool.cache_dir={cache}"]
    return compose([*overrides, *caches])


def test_the_pool_serves_the_six_candidates_at_router_r1_prices(cfg, openai_server):
    with instantiate(cfg.pool) as pool:
        assert {d.name: d.price_out for d in pool.descriptors} == PRICES
        assert all(d.price_in == d.price_out for d in pool.descriptors)
        results = pool.generate(
            [Request(d.name, ({"role": "user", "content": "two words"},)) for d in pool.descriptors]
        )
    assert [r.error for r in results] == [None] * 6
    assert {r.text for r in results} == {"sdrow owt"}  # the loopback server answers reversed
    for d, r in zip(pool.descriptors, results, strict=True):
        assert r.cost_usd == pytest.approx((r.input_tokens + r.output_tokens) * d.price_out / 1e6)
    assert sorted(openai_server.calls) == sorted(d.model for d in pool.descriptors)  # endpoint model ids
    assert set(openai_server.auth) == {"Bearer sk-loopback"}


def test_the_vllm_pool_asks_for_router_r1s_seventeen_gpus(compose):
    pool = typed(compose(["experiment=router_r1"]).pool)
    assert [m.name for m in pool.models] == list(PRICES)
    assert all(m.backend == "vllm" and m.num_gpus == m.vllm.tensor_parallel_size for m in pool.models)
    assert sum(m.num_gpus for m in pool.models) == 17


def test_data_is_nq_and_hotpotqa_for_training_and_seven_benchmarks_for_eval(cfg):
    train, test = load_splits(cfg, typed(cfg.trainer))
    assert sorted({r["source"] for r in train}) == ["hotpotqa", "nq"] and len(train) == 10  # limit 5 each
    assert {r["source"] for r in test} == set(ROUTER_R1_EVAL_SPLITS) and len(test) == 7 * 3
    with instantiate(cfg.pool) as pool:
        prompts = grpo_dataset(train, list(pool.descriptors), max_routes=cfg.env.max_routes)["prompt"]
    text = prompts[0][0]["content"]
    assert "mixtral-8x22b-instruct (141B parameters, $1.20 per 1M output tokens)" in text


def test_trl_gets_router_r1s_optimisation_settings(cfg, tmp_path, monkeypatch):
    # The only check in TrainingArguments that needs hardware is "bf16 needs a GPU"; stand in for it.
    import transformers.training_args as training_args

    monkeypatch.setattr(training_args, "is_torch_bf16_gpu_available", lambda: True)
    args = grpo_args(typed(cfg.trainer), tmp_path / "checkpoints")
    assert (args.learning_rate, args.beta, args.temperature, args.max_steps) == (1e-6, 0.001, 1.0, 225)
    assert (args.num_generations, args.per_device_train_batch_size, args.gradient_accumulation_steps) == (
        5,
        8,
        40,
    )
    assert args.per_device_train_batch_size * args.gradient_accumulation_steps == 64 * 5  # 64 questions x G
    assert (args.bf16, args.use_vllm, args.vllm_mode, args.gradient_checkpointing) == (
        True,
        True,
        "colocate",
        True,
    )
    assert args.generation_kwargs["stop"] == ["</search>", "</answer>"] and args.max_completion_length == 4096
    assert args.save_steps == 15
