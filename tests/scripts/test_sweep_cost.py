"""scripts/sweep_cost.py: collection of a multirun's reports (fake runs) and a real 2-alpha multirun."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from rl_router.eval.pareto import merge_coincident

REPO = Path(__file__).resolve().parents[2]


def load_script():
    spec = importlib.util.spec_from_file_location("sweep_cost", REPO / "scripts" / "sweep_cost.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


sweep_cost = load_script()

POOL = {
    "name": "two",
    "models": [
        {"name": "cheap", "backend": "fake", "price_in": 0.2, "price_out": 0.2},
        {"name": "strong", "backend": "fake", "price_in": 10.0, "price_out": 30.0},
    ],
}


def fake_run(root: Path, job: int, alpha: float, router: dict) -> dict:
    """A multirun job directory with the two files the collection reads."""
    run = root / str(job)
    run.mkdir(parents=True)
    OmegaConf.save(OmegaConf.create({"env": {"alpha": alpha}, "pool": POOL}), run / "config.yaml")
    report = {
        "overall": {
            "router": router,
            "random": {"accuracy": 0.6, "dollars_per_query": 0.002},
            "oracle": {"accuracy": 0.9, "dollars_per_query": 0.001},
            "single/cheap": {"accuracy": 0.5, "dollars_per_query": 0.0001},
            "single/strong": {"accuracy": 0.8, "dollars_per_query": 0.004},
        },
        "meta": {"rows": 10},
    }
    (run / "report.json").write_text(json.dumps(report))
    return report


def router_row(acc: float, dollars: float, strong_share: float, apgr: float | None) -> dict:
    return {
        "accuracy": acc,
        "dollars_per_query": dollars,
        "apgr": apgr,
        "cpt50": None if apgr is None else 40.0 + acc,
        "cpt80": 70.0,
        "route_share": {"cheap": 1 - strong_share, "strong": strong_share},
    }


def test_collection_reads_every_report_sorted_by_alpha(tmp_path):
    fake_run(tmp_path, 0, 0.9, router_row(0.55, 0.0003, 0.1, 0.31))
    fake_run(tmp_path, 1, 0.0, router_row(0.79, 0.0039, 0.95, 0.72))
    fake_run(tmp_path, 2, 0.6, router_row(0.70, 0.0012, 0.4, None))
    (tmp_path / "3").mkdir()  # a job that died before writing anything
    rows, baselines = sweep_cost.collect_sweep(tmp_path)

    assert [r["alpha"] for r in rows] == [0.0, 0.6, 0.9]
    assert [r["run"] for r in rows] == ["1", "2", "0"]
    assert [r["accuracy"] for r in rows] == [0.79, 0.70, 0.55]
    assert [r["dollars_per_query"] for r in rows] == [0.0039, 0.0012, 0.0003]
    assert [r["apgr"] for r in rows] == [0.72, None, 0.31]
    assert [r["cpt50"] for r in rows] == [40.79, None, 40.55]
    assert {r["strong_model"] for r in rows} == {"strong"}  # the priciest candidate
    assert [r["strong_share"] for r in rows] == [0.95, 0.4, 0.1]
    assert baselines == {
        "random": (0.002, 0.6),
        "oracle": (0.001, 0.9),
        "single/cheap": (0.0001, 0.5),
        "single/strong": (0.004, 0.8),
    }


def test_outputs_hold_the_collected_numbers(tmp_path):
    fake_run(tmp_path, 0, 0.0, router_row(0.79, 0.0039, 0.95, 0.72))
    fake_run(tmp_path, 1, 0.9, router_row(0.55, 0.0003, 0.1, None))
    rows, baselines = sweep_cost.collect_sweep(tmp_path)
    paths = sweep_cost.write_outputs(rows, baselines, tmp_path)

    assert paths["png"].read_bytes().startswith(b"\x89PNG")
    saved = json.loads(paths["json"].read_text())
    assert saved["rows"] == rows
    assert saved["baselines"]["oracle"] == [0.001, 0.9]
    assert paths["md"].read_text().splitlines() == [
        "| alpha | test accuracy | $ / query | test APGR | CPT(50%) | share to strong "
        "| val APGR | val accuracy | run |",
        "|---|---|---|---|---|---|---|---|---|",
        "| 0 | 0.7900 | 0.003900 | 0.720 | 40.790 | 0.950 | n/a | n/a | 0 |",
        "| 0.9 | 0.5500 | 0.000300 | n/a | n/a | 0.100 | n/a | n/a | 1 |",
    ]


def test_coincident_points_share_one_label():
    points = {
        "alpha=0.6": (1e-5, 0.68),
        "alpha=0.9": (1e-5, 0.68),
        "single/cheap": (1e-5, 0.68),
        "oracle": (1.0, 0.9),
    }
    assert merge_coincident(points) == {
        "alpha=0.6 = alpha=0.9 = single/cheap": (1e-5, 0.68),
        "oracle": (1.0, 0.9),
    }


def test_collect_only_without_runs_says_where_it_looked(tmp_path):
    with pytest.raises(SystemExit, match="no finished run"):
        sweep_cost.main(["--collect-only", str(tmp_path)])


def test_real_two_alpha_multirun_through_the_cli(tmp_path, capsys):
    """Two tiny trainings via `rl-router train --multirun` (about 25 s on 2 cores)."""
    out = tmp_path / "sweep"
    overrides = ["debug=tiny", "data.limit=300", "trainer.total_steps=128", "trainer.checkpoint_every=0"]
    paths = sweep_cost.main(["--alphas", "0.1", "0.9", "--out", str(out), *overrides])

    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["0", "1"]
    rows = json.loads(paths["json"].read_text())["rows"]
    assert [r["alpha"] for r in rows] == [0.1, 0.9]
    for row in rows:
        report = json.loads((out / row["run"] / "report.json").read_text())["overall"]["router"]
        assert row["accuracy"] == report["accuracy"]
        assert row["dollars_per_query"] == report["dollars_per_query"]
        assert row["apgr"] == report["apgr"]
        assert row["strong_share"] == report["route_share"]["gpt-4"]
    assert rows[0]["strong_model"] == "gpt-4"
    assert paths["png"].stat().st_size > 0
    printed = capsys.readouterr().out
    assert "| alpha | test accuracy |" in printed and str(paths["png"]) in printed
    assert all(r["val_apgr"] is not None for r in rows)  # every run also scored its validation split
    assert "chosen on validation APGR: alpha=" in printed
