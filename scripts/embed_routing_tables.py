"""Embed every prompt of the RouteLLM response tables and write the shipped embedding asset.

Reads ``gsm8k/gsm8k_responses.csv`` and ``mmlu/mmlu_*.csv`` (column ``prompt``) under the RouteLLM
data folder, embeds each distinct prompt with all-MiniLM-L6-v2 (``rl_router.embeddings``) and writes
``rl_router/data/assets/embeddings/routellm_minilm.npz`` (sha1 keys + float16 vectors), so the
default training run skips this step (~6 minutes for ~13k prompts on 2 CPU cores).

Work is saved every ``--chunk`` prompts; rerunning after an interruption only embeds what is left.

Launch:
    nohup .venv/bin/python scripts/embed_routing_tables.py \
        --data ../shared/data/routellm > embed_routing_tables.log 2>&1 &
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

from rl_router.embeddings import EmbeddingCache, default_encoder, embed_cached

ASSET = Path(__file__).resolve().parents[1] / "rl_router/data/assets/embeddings/routellm_minilm.npz"


def routellm_prompts(data_dir: Path) -> list[str]:
    """Distinct prompts of the GSM8K and MMLU tables, in file order (GSM8K first, MMLU by subject).

    Raises:
        FileNotFoundError: A table is missing, so the asset would silently cover less.
    """
    gsm8k = data_dir / "gsm8k" / "gsm8k_responses.csv"
    mmlu = sorted((data_dir / "mmlu").glob("mmlu_*.csv"))
    if not gsm8k.is_file() or not mmlu:
        raise FileNotFoundError(f"expected gsm8k/gsm8k_responses.csv and mmlu/mmlu_*.csv under {data_dir}")
    prompts: list[str] = []
    for csv in [gsm8k, *mmlu]:
        prompts.extend(pd.read_csv(csv, usecols=["prompt"])["prompt"].dropna().astype(str))
    return list(dict.fromkeys(prompts))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/routellm"), help="RouteLLM data")
    parser.add_argument("--out", type=Path, default=ASSET, help="the .npz to write (resumed if present)")
    parser.add_argument("--batch-size", type=int, default=64, help="texts per forward pass")
    parser.add_argument("--chunk", type=int, default=2048, help="prompts embedded between saves")
    args = parser.parse_args()

    prompts = routellm_prompts(args.data)
    todo = [p for p in prompts if p not in EmbeddingCache(args.out)]
    print(f"{len(prompts)} distinct prompts, {len(prompts) - len(todo)} already in {args.out}", flush=True)
    if todo:
        encoder = default_encoder()
        start = time.perf_counter()
        for i in range(0, len(todo), args.chunk):
            embed_cached(todo[i : i + args.chunk], args.out, batch_size=args.batch_size, encoder=encoder)
            done = min(i + args.chunk, len(todo))
            rate = done / (time.perf_counter() - start)
            print(f"{done}/{len(todo)} embedded, {rate:.1f} prompts/s", flush=True)
    cache = EmbeddingCache(args.out)
    cache.get(prompts)  # raises if any prompt is missing
    size_mb = args.out.stat().st_size / 2**20
    print(f"wrote {args.out}: {len(cache)} vectors, {size_mb:.1f} MiB", flush=True)


if __name__ == "__main__":
    main()
