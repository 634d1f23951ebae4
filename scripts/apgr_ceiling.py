"""How much routing signal each query-feature set holds: supervised full-information APGR.

The PPO router sees, per query, only the outcome of the model it picked. This script fits, on the same
training rows and the same features (:mod:`rl_router.data.features`), an L2 logistic regression that
sees BOTH models' recorded outcomes and predicts ``P(score(strong) > score(weak))``; ranking
held-out queries by it is what a threshold router on those features can be expected to reach. One
row per feature set, APGR per benchmark on the validation and on the test rows (choose on
validation). Also: the prompt's length alone, and the mean training gain of the row's MMLU subject,
a reference that only works on subjects seen in training (no feature: an unseen subject has no prior),
and a k-nearest-neighbour ranker (the mean training gain of the k most similar training prompts by
embedding cosine; ``--knn``), which is a memory of the training rows rather than a feature.

``--unseen-subjects N`` adds the check that tells memory from transfer: N times, a quarter of the MMLU
subjects is held out whole (their training rows dropped, their test rows scored), and the logistic
regression on the embedding and the k-NN ranker are compared on those subjects only.

The last line is ``apgr_json=<json>``: feature set -> split -> benchmark -> APGR.

Launch:
    .venv/bin/python scripts/apgr_ceiling.py [--test-fraction 0.3] [--split-seed 0] [--l2 1e-3]
        [--knn 25 50 100] [--unseen-subjects 3 --unseen-k 50]
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict

import numpy as np
import torch

from rl_router.data.features import query_features
from rl_router.data.routellm import load_routing_splits
from rl_router.embeddings import embed_queries
from rl_router.eval.routellm_metrics import apgr

STRONG, WEAK = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"
FEATURE_SETS = (
    ("embedding",),
    ("length",),
    ("format", "text_stats"),
    ("length", "format", "text_stats"),
    ("embedding", "length"),
    ("embedding", "length", "format", "text_stats"),
)


def fit_logistic(x: np.ndarray, y: np.ndarray, l2: float, steps: int = 200) -> tuple[np.ndarray, float]:
    """L2-regularised logistic regression by L-BFGS on standardised columns: ``(weights, bias)``."""
    xt, yt = torch.from_numpy(x).double(), torch.from_numpy(y).double()
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(xt @ w + b, yt) + l2 * (w @ w)
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy(), float(b)


def knn_gain(queries: np.ndarray, bank: np.ndarray, gain: np.ndarray, k: int) -> np.ndarray:
    """``[n]``: the mean ``gain`` of each query's ``k`` most cosine-similar rows of ``bank``."""
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    b = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    nearest = np.argpartition(-(q @ b.T), k - 1, axis=1)[:, :k]
    return gain[nearest].mean(axis=1)


def unseen_subjects(splits: dict, emb: dict, s: int, w: int, l2: float, k: int, reps: int) -> None:
    """Print, per repeat and on average, test APGR on MMLU subjects whose rows never trained."""
    train, test = splits["train"], splits["test"]
    subjects = sorted({src for src in train.sources if src.startswith("mmlu")})
    rng = np.random.default_rng(0)
    rows: list[tuple[float, float]] = []
    for rep in range(reps):
        held = set(rng.choice(subjects, size=len(subjects) // 4, replace=False))
        keep = np.array([src not in held for src in train.sources])
        score = np.array([src in held for src in test.sources])
        gain = train.scores[keep, s] - train.scores[keep, w]
        x = emb["train"][keep]
        mean, std = x.mean(0), x.std(0) + 1e-6
        weights, bias = fit_logistic((x - mean) / std, (gain > 0).astype(np.float64), l2)
        weak, strong = test.scores[score, w], test.scores[score, s]
        lr = apgr(((emb["test"][score] - mean) / std) @ weights + bias, weak, strong)
        nn = apgr(knn_gain(emb["test"][score], x, gain, k), weak, strong)
        rows.append((lr, nn))
        print(
            f"unseen subjects, repeat {rep}: {len(held)} subjects, {int(score.sum())} test rows: "
            f"logistic(embedding) {lr:.3f}, {k}-NN {nn:.3f}"
        )
    lr_mean, nn_mean = np.mean(rows, axis=0)
    print(f"unseen_subjects_apgr logistic={lr_mean:.3f} knn{k}={nn_mean:.3f} repeats={reps}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test-fraction", type=float, default=0.3)
    parser.add_argument("--split-seed", type=int, default=0)
    parser.add_argument("--l2", type=float, default=1e-3, help="L2 weight on the standardised weights")
    parser.add_argument("--knn", type=int, nargs="*", default=[25, 50, 100], help="k of the k-NN rows")
    parser.add_argument("--unseen-subjects", type=int, default=0, help="repeats of the unseen-subject check")
    parser.add_argument("--unseen-k", type=int, default=50, help="k of the unseen-subject check")
    args = parser.parse_args()

    splits = dict(
        zip(("train", "val", "test"), load_routing_splits(args.test_fraction, args.split_seed), strict=True)
    )
    s, w = splits["train"].models.index(STRONG), splits["train"].models.index(WEAK)
    emb = {name: embed_queries(t.prompts, progress=False) for name, t in splits.items()}
    gain = {name: t.scores[:, s] - t.scores[:, w] for name, t in splits.items()}
    bench = {name: np.array([src.split("/")[0] for src in t.sources]) for name, t in splits.items()}
    benches = sorted(set(bench["test"]))

    def scores_of(score: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
        out: dict[str, dict[str, float]] = {}
        for split in ("val", "test"):
            t, rows = splits[split], bench[split]
            out[split] = {
                b: apgr(score[split][rows == b], t.scores[rows == b, w], t.scores[rows == b, s])
                for b in benches
            }
        return out

    results: dict[str, dict[str, dict[str, float]]] = {}
    for blocks in FEATURE_SETS:
        x = {n: query_features(t.prompts, blocks, embeddings=emb[n]) for n, t in splits.items()}
        mean, std = x["train"].mean(0), x["train"].std(0) + 1e-6  # training rows only
        weights, bias = fit_logistic(
            (x["train"] - mean) / std, (gain["train"] > 0).astype(np.float64), args.l2
        )
        results["+".join(blocks)] = scores_of(
            {n: ((x[n] - mean) / std) @ weights + bias for n in ("val", "test")}
        )
    results["prompt length (chars)"] = scores_of(
        {n: np.array([len(p) for p in splits[n].prompts], float) for n in ("val", "test")}
    )
    subject_gain: dict[str, list[float]] = defaultdict(list)
    for source, g in zip(splits["train"].sources, gain["train"], strict=True):
        subject_gain[source].append(float(g))
    results["subject prior (seen subjects only)"] = scores_of(
        {
            n: np.array([np.mean(subject_gain.get(src, [0.0])) for src in splits[n].sources])
            for n in ("val", "test")
        }
    )

    for k in args.knn:
        results[f"{k}-NN training gain (memory)"] = scores_of(
            {n: knn_gain(emb[n], emb["train"], gain["train"], k) for n in ("val", "test")}
        )
    if args.unseen_subjects:
        unseen_subjects(splits, emb, s, w, args.l2, args.unseen_k, args.unseen_subjects)

    counts = {n: ", ".join(f"{b}={int((bench[n] == b).sum())}" for b in benches) for n in ("val", "test")}
    print(
        f"rows: train {len(splits['train'])}, val {len(splits['val'])} ({counts['val']}), test "
        f"{len(splits['test'])} ({counts['test']}); logistic regression, l2={args.l2:g}"
    )
    header = "".join(f"{split + ' ' + b:>12}" for split in ("val", "test") for b in benches)
    print(f"{'features':<44}{header}")
    for name, res in results.items():
        print(
            f"{name:<44}" + "".join(f"{res[split][b]:>12.3f}" for split in ("val", "test") for b in benches)
        )
    print(
        "apgr_json="
        + json.dumps(
            {
                k: {sp: {b: round(v, 4) for b, v in r.items()} for sp, r in res.items()}
                for k, res in results.items()
            }
        )
    )


if __name__ == "__main__":
    main()
