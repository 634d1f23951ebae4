"""Row counts and per-model accuracy of the shipped RouteLLM routing tables (MMLU, GSM8K, MT-Bench).

Counts are shown before and after RouteLLM's decontamination (rows whose prompt is listed in the
benchmark's ``contaminated_prompts.jsonl``), with the mean token counts that cost-aware rewards use.

Launch: .venv/bin/python scripts/routing_table_stats.py [--path DIR] [--benchmarks mmlu gsm8k mt_bench]
"""

from __future__ import annotations

import argparse

from rl_router.data.routellm import load_routing_table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", default=None, help="RouteLLM-format directory (default: shipped copy)")
    parser.add_argument("--benchmarks", nargs="+", default=["mmlu", "gsm8k"])
    args = parser.parse_args()

    for benchmark in args.benchmarks:
        raw = load_routing_table(args.path, [benchmark], exclude_contaminated=False)
        table = load_routing_table(args.path, [benchmark], exclude_contaminated=True)
        print(
            f"== {benchmark}: {len(raw)} rows, {len(table)} after decontamination "
            f"({len(raw) - len(table)} excluded), {len(set(table.sources))} source(s)"
        )
        width = max(len(model) for model in table.models)
        print(f"   {'model':<{width}}  accuracy  (raw)   in_tok  out_tok")
        raw_accuracy = raw.accuracy()
        for j, (model, accuracy) in enumerate(table.accuracy().items()):
            print(
                f"   {model:<{width}}  {accuracy:.4f}    ({raw_accuracy[model]:.4f})"
                f"  {table.input_tokens[:, j].mean():6.1f}  {table.output_tokens[:, j].mean():7.1f}"
            )
        oracle = table.scores.max(axis=1).mean()
        print(f"   {'oracle (best model per query)':<{width}}  {oracle:.4f}")


if __name__ == "__main__":
    main()
