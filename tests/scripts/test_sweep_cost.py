"""scripts/sweep_cost.py: collection of a multirun's reports (fake runs) and a real 2-budget multirun."""

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


def fake_run(root: Path, job: int, alpha: float, router: dict, budget: float | None = None) -> dict:
    """A multirun job directory with the two files the collection reads."""
    run = root / str(job)
    run.mkdir(parents=True)
    trainer = {"budget": {"cost_per_query": budget, "share": {}}}
    config = {"env": {"alpha": alpha}, "trainer": trainer, "pool": POOL}
    OmegaConf.save(OmegaConf.create(config), run / "config.yaml")
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

    assert [r["setting"] for r in rows] == [{"env.alpha": 0.0}, {"env.alpha": 0.6}, {"env.alpha": 0.9}]
    assert [r["run"] for r in rows] == ["1", "2", "0"]
    assert [r["accuracy"] for r in rows] == [0.79, 0.70, 0.55]
    assert [r["dollars_per_query"] for r in rows] == [0.0039, 0.0012, 0.0003]
    assert [r["apgr"] for r in rows] == [0.72, None, 0.31]
    assert [r["cpt50"] for r in rows] == [40.79, None, 40.55]
    assert {r["strong_model"] for r in rows} == {"strong"}  # the priciest candidate
    assert [r["strong_share"] for r in rows] == [0.95, 0.4, 0.1]
    assert rows[0]["route_share"] == {"cheap": 0.050000000000000044, "strong": 0.95}
    assert baselines == {
        "random": (0.002, 0.6),
        "oracle": (0.001, 0.9),
        "single/cheap": (0.0001, 0.5),
        "single/strong": (0.004, 0.8),
    }


def test_budget_runs_are_keyed_and_sorted_by_their_budget(tmp_path):
    fake_run(tmp_path, 0, 0.2, router_row(0.70, 0.0020, 0.5, 0.6), budget=0.002)
    fake_run(tmp_path, 1, 0.2, router_row(0.60, 0.0007, 0.2, 0.6), budget=0.0007)
    rows, _ = sweep_cost.collect_sweep(tmp_path)
    assert [r["setting"] for r in rows] == [
        {"trainer.budget.cost_per_query": 0.0007},
        {"trainer.budget.cost_per_query": 0.002},
    ]
    assert [sweep_cost.label(r["setting"]) for r in rows] == ["cost_per_query=0.0007", "cost_per_query=0.002"]


def test_outputs_hold_the_collected_numbers(tmp_path):
    fake_run(tmp_path, 0, 0.2, router_row(0.79, 0.0039, 0.95, 0.72), budget=0.0039)
    fake_run(tmp_path, 1, 0.2, router_row(0.55, 0.0003, 0.1, None), budget=0.0003)
    fake_run(tmp_path, 2, 0.2, router_row(0.60, 0.0020, 0.5, None), budget=0.002)
    rows, baselines = sweep_cost.collect_sweep(tmp_path)
    paths = sweep_cost.write_outputs(rows, baselines, tmp_path)

    assert paths["png"].read_bytes().startswith(b"\x89PNG")
    saved = json.loads(paths["json"].read_text())
    assert isinstance(saved, list) and saved == rows
    assert {"setting", "accuracy", "dollars_per_query", "route_share"} <= set(saved[0])
    assert json.loads(paths["baselines"].read_text())["oracle"] == [0.001, 0.9]
    assert paths["md"].read_text().splitlines() == [
        "| setting | test accuracy | $ / query | test APGR | CPT(50%) | share to strong "
        "| val APGR | val accuracy | run |",
        "|---|---|---|---|---|---|---|---|---|",
        "| cost_per_query=0.0003 | 0.5500 | 0.000300 | n/a | n/a | 0.100 | n/a | n/a | 1 |",
        "| cost_per_query=0.002 | 0.6000 | 0.002000 | n/a | n/a | 0.500 | n/a | n/a | 2 |",
        "| cost_per_query=0.0039 | 0.7900 | 0.003900 | 0.720 | 40.790 | 0.950 | n/a | n/a | 0 |",
        "",
        "distinct operating points: 3",
        "$/query strictly monotone in the setting: True",
        "accuracy rises with $/query: True",
        # the single-model line, (0.0001, 0.5) to (0.004, 0.8), is at 0.5154, 0.6462, 0.7923 for these
        "on or above the single-model line: 1/3 (accuracy margins +0.0346, -0.0462, -0.0023)",
    ]


def test_the_last_line_printed_names_sweep_json(tmp_path, capsys):
    fake_run(tmp_path, 0, 0.2, router_row(0.79, 0.0039, 0.95, 0.72), budget=0.0039)
    paths = sweep_cost.main(["--collect-only", str(tmp_path)])
    assert capsys.readouterr().out.rstrip("\n").splitlines()[-1] == f"sweep_json={paths['json']}"


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


def test_real_two_budget_multirun_through_the_cli(tmp_path, capsys):
    """Two tiny budget trainings via `rl-router train --multirun` (about 25 s on 2 cores)."""
    out = tmp_path / "sweep"
    overrides = ["debug=tiny", "data.limit=300", "trainer.total_steps=128", "trainer.checkpoint_every=0"]
    paths = sweep_cost.main(["--budgets", "0.0005", "0.002", "--out", str(out), *overrides])

    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["0", "1"]
    rows = json.loads(paths["json"].read_text())
    assert [r["setting"] for r in rows] == [
        {"trainer.budget.cost_per_query": 0.0005},
        {"trainer.budget.cost_per_query": 0.002},
    ]
    for row in rows:
        run = out / row["run"]
        report = json.loads((run / "report.json").read_text())["overall"]["router"]
        assert row["accuracy"] == report["accuracy"]
        assert row["dollars_per_query"] == report["dollars_per_query"]
        assert row["route_share"] == report["route_share"]
        assert row["apgr"] == report["apgr"]
        assert row["strong_share"] == report["route_share"]["gpt-4"]
        trainer = OmegaConf.load(run / "config.yaml").trainer
        assert (trainer.lr, trainer.update_epochs) == (1e-3, 10)  # what budget runs train with
    assert rows[0]["strong_model"] == "gpt-4"
    assert paths["png"].stat().st_size > 0
    printed = capsys.readouterr().out
    assert "| setting | test accuracy |" in printed and str(paths["png"]) in printed
    assert all(r["val_apgr"] is not None for r in rows)  # every run also scored its validation split
    assert "chosen on validation APGR: cost_per_query=" in printed
    assert printed.rstrip("\n").splitlines()[-1] == f"sweep_json={paths['json']}"


def test_a_share_run_of_the_budget_experiment_is_labelled_by_its_set_model_only():
    trainer = {"budget": {"cost_per_query": None, "share": {"mixtral-8x7b": None, "gpt-4": 0.5}}}
    cfg = OmegaConf.create({"env": {"alpha": 0.0}, "trainer": trainer})
    assert sweep_cost.setting_of(cfg) == {"trainer.budget.share.gpt-4": 0.5}
    trainer["budget"]["share"]["gpt-4"] = None  # only placeholders: no budget, the alpha run
    assert sweep_cost.setting_of(OmegaConf.create({"env": {"alpha": 0.2}, "trainer": trainer})) == {
        "env.alpha": 0.2
    }
