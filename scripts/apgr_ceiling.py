"""How much routing signal the default router's features hold: supervised full-information APGR.

The PPO router sees, per query, only the outcome of the model it picked. This script fits, on the same
training rows and the same all-MiniLM-L6-v2 embeddings, regressors that see BOTH models' recorded
outcomes and predict ``score(strong) - score(weak)``; ranking held-out queries by that prediction is
the best a threshold router on these features can be expected to do. Also reported: single-feature
rankings (prompt length, MMLU subject prior) and random (0.5 by construction).

Launch:
    .venv/bin/python scripts/apgr_ceiling.py [--test-fraction 0.3] [--split-seed 0]
"""

from __future__ import annotations

import argparse
from collections import defaultdict

import numpy as np
import torch

from rl_router.data.routellm import load_routing_splits
from rl_router.embeddings import embed_queries
from rl_router.eval.routellm_metrics import apgr

STRONG, WEAK = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"


def fit_regressor(
    x: np.ndarray, y: np.ndarray, hidden: int, epochs: int = 300, seed: int = 0
) -> torch.nn.Module:
    """Full-batch Adam on squared error; ``hidden=0`` is a linear model."""
    torch.manual_seed(seed)
    dim = x.shape[1]
    net = (
        torch.nn.Linear(dim, 1)
        if hidden == 0
        else torch.nn.Sequential(torch.nn.Linear(dim, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 1))
    )
    opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-3)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(epochs):
        opt.zero_grad()
        loss = ((net(xt).squeeze(-1) - yt) ** 2).mean()
        loss.backward()
        opt.step()
    return net.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test-fraction", type=float, default=0.3)
    parser.add_argument("--split-seed", type=int, default=0)
    args = parser.parse_args()

    train, _, test = load_routing_splits(test_fraction=args.test_fraction, split_seed=args.split_seed)
    s, w = train.models.index(STRONG), train.models.index(WEAK)
    x_train = embed_queries(train.prompts, progress=False)
    x_test = embed_queries(test.prompts, progress=False)
    y_train = (train.scores[:, s] - train.scores[:, w]).astype(np.float32)
    bench = np.array([src.split("/")[0] for src in test.sources])

    subject_gain: dict[str, list[float]] = defaultdict(list)
    for source, gain in zip(train.sources, y_train, strict=True):
        subject_gain[source].append(float(gain))
    rankings = {
        "prompt length (chars)": np.array([len(p) for p in test.prompts], dtype=np.float64),
        "subject prior (mean train gain per source)": np.array(
            [np.mean(subject_gain.get(src, [0.0])) for src in test.sources]
        ),
    }
    for hidden in (0, 256):
        net = fit_regressor(x_train, y_train, hidden)
        with torch.no_grad():
            pred = net(torch.from_numpy(x_test)).squeeze(-1).numpy()
        rankings[f"supervised regressor on embeddings ({'linear' if hidden == 0 else f'MLP {hidden}'})"] = (
            pred
        )

    print(
        f"held-out rows: {len(test)} "
        f"({', '.join(f'{b}={int((bench == b).sum())}' for b in sorted(set(bench)))})"
    )
    print(f"{'ranking':<58}" + "".join(f"{b:>10}" for b in sorted(set(bench))))
    for name, score in rankings.items():
        row = [
            apgr(score[bench == b], test.scores[bench == b, w], test.scores[bench == b, s])
            for b in sorted(set(bench))
        ]
        print(f"{name:<58}" + "".join(f"{v:>10.3f}" for v in row))


if __name__ == "__main__":
    main()
