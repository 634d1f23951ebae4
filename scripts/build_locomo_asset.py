"""Build the compact LoCoMo asset the memory_tiers default run and tests read.

Launch: .venv/bin/python scripts/build_locomo_asset.py --src ../shared/data/locomo/locomo10.json

Keeps, per conversation, the speakers, every session's date and its turns (speaker, dia_id, text),
and the QA of categories 1-4 (question, answer, evidence, category). Dropped: images (urls, BLIP
captions), the observation / event / session summaries, and category 5 (adversarial: BudgetMem and
LoCoMo's F1 leave it out). Writes ``rl_router/data/assets/locomo/locomo10_text.json.gz``.
"""

from __future__ import annotations

import argparse
import gzip
import json
from pathlib import Path

from rl_router.data.locomo import ASSET as OUT
from rl_router.data.locomo import compact_conversations as compact


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", default="../shared/data/locomo/locomo10.json")
    args = parser.parse_args()
    data = compact(json.loads(Path(args.src).read_text()))
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    OUT.write_bytes(gzip.compress(payload, compresslevel=9, mtime=0))
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(data)} conversations)")


if __name__ == "__main__":
    main()
