"""scripts/ablate_collapse.py: what it reads from each mechanism's run (fake runs, no training)."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest
from omegaconf import OmegaConf

REPO = Path(__file__).resolve().parents[2]
POOL = {
    "name": "two",
    "models": [
        {"name": "cheap", "backend": "fake", "price_in": 0.2, "price_out": 0.2},
        {"name": "strong", "backend": "fake", "price_in": 10.0, "price_out": 30.0},
    ],
}


def load_script():
    spec = importlib.util.spec_from_file_location("ablate_collapse", REPO / "scripts" / "ablate_collapse.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_run(run: Path, share: float, entropies: list[float]) -> None:
    (run / "validation").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create({"pool": POOL}), run / "config.yaml")
    router = {
        "accuracy": 0.7,
        "dollars_per_query": 0.002,
        "route_share": {"cheap": 1 - share, "strong": share},
    }
    report = {
        "overall": {"router": {**router, "apgr": 0.6}},
        "mmlu": {"router": {"apgr": 0.61, "cpt50": 30.0}},
        "gsm8k": {"router": {"apgr": 0.55, "cpt50": 40.0}},
        "meta": {},
    }
    (run / "report.json").write_text(json.dumps(report))
    (run / "validation" / "report.json").write_text(json.dumps({"overall": {"router": {"apgr": 0.58}}}))
    rows = [{"step": 32 * (i + 1), "train/loss/entropy": e} for i, e in enumerate(entropies)]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in [*rows, {"step": 99, "eval/x": 1}]))


def test_collect_reads_held_out_numbers_and_the_entropy_curve(tmp_path, capsys):
    script = load_script()
    fake_run(tmp_path / "rolling", share=0.25, entropies=[0.69, 0.05, 0.40])
    fake_run(tmp_path / "table", share=1.0, entropies=[0.69, 0.30])
    rows = script.main(["--collect-only", str(tmp_path)])
    assert list(rows) == ["rolling", "table"]
    r = rows["rolling"]
    assert r["strong_share"] == 0.25  # the dearest model of the run's pool
    assert (r["entropy_final"], r["entropy_min"]) == (0.40, 0.05)
    assert r["entropy_final_ratio"] == pytest.approx(0.40 / math.log(2))
    assert r["apgr"] == {"mmlu": 0.61, "gsm8k": 0.55} and r["val_apgr"] == 0.58
    assert r["curve"] == [[32, 64, 96], [0.69, 0.05, 0.40]]
    out = capsys.readouterr().out.strip().splitlines()
    assert "| rolling | 0.7000 | 0.002000 | 0.250 | 0.550 | 0.610 | 0.580 | 0.400 / 0.050 | 0.58 |" in out
    summary = json.loads(out[-1].removeprefix("ablation_json="))
    assert summary["table"]["strong_share"] == 1.0 and "curve" not in summary["table"]
    assert (tmp_path / "entropy.png").stat().st_size > 1000
