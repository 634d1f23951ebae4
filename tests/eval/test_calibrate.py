"""`rl-router calibrate` on a trained run: targets met on held-out test rows, and every consumer honours it.

One tiny run of the default experiment (3000 rows: 1804 train, 900 test) trains in about a minute.
Calibrated on its training rows, ``rl-router eval`` must find each target on the test rows: a share
within +-0.03, a cost within +-10%.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from rl_router import load_router
from rl_router.data.routellm import load_routing_splits
from rl_router.eval.calibrate import run_calibrate
from rl_router.eval.run import run_eval
from rl_router.hub import export_router
from rl_router.routers.calibration import CalibrationError

TRAIN = ["debug=tiny", "data.limit=3000", "trainer.total_steps=2048", "trainer.checkpoint_every=1024"]
NAMES = ["mixtral-8x7b", "gpt-4"]


def compose(config_name: str, overrides: list[str]):
    from rl_router.cli import compose_config

    return compose_config(config_name, overrides)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny trained run of the default experiment (never calibrated: tests work on copies)."""
    from rl_router.recipes.policy_router_ppo import train

    run_dir = tmp_path_factory.mktemp("trained") / "run"
    train(compose("config", TRAIN), run_dir, progress=False)
    return run_dir


@pytest.fixture
def run(trained, tmp_path):
    """A fresh copy of the trained run."""
    return shutil.copytree(trained, tmp_path / "run")


def calibrate(run, *overrides: str):
    return run_calibrate(compose("calibrate", [f"checkpoint={run}", *overrides]))


def evaluate(run, out_dir, *overrides: str) -> dict:
    return run_eval(compose("eval", [f"checkpoint={run}", f"out_dir={out_dir}", *overrides]))


def test_share_targets_are_reached_on_the_test_rows(run, tmp_path, capsys):
    measured = {}
    for share in (0.2, 0.5, 0.8):
        fitted = calibrate(run, f"target.share={share}")
        assert fitted.target == {"share": share, "model": "gpt-4"}  # default: the dearest candidate
        assert fitted.fitted_on["rows"] == 1804  # every training row (fewer than rows=2000)
        assert fitted.fitted_on["source"].startswith("training split of routellm/gsm8k+mmlu")
        assert fitted.achieved["route_share"]["gpt-4"] == pytest.approx(share, abs=1 / 1804)
        assert fitted.offsets[0] == 0.0
        router = evaluate(run, tmp_path / f"eval-{share}")["overall"]["router"]
        assert router["target"] == {"share": share, "model": "gpt-4"}
        measured[share] = router["route_share"]["gpt-4"]
    out = capsys.readouterr().out
    print(f"share of gpt-4 on the test rows, by target: {measured}")
    for share, reached in measured.items():
        assert reached == pytest.approx(share, abs=0.03), measured
    assert "target: share 0.8 of gpt-4" in out and "offsets (added to log p): mixtral-8x7b +0, gpt-4 " in out
    assert "Calibration applied (calibration.json): target share 0.8 of gpt-4" in out  # report.md


def test_a_cost_target_is_reached_on_the_test_rows(run, tmp_path):
    gpt4 = json.loads((run / "report.json").read_text())["overall"]["single/gpt-4"]["dollars_per_query"]
    target = round(gpt4 / 2, 6)
    fitted = calibrate(run, f"target.cost_per_query={target}")
    assert fitted.target == {"cost_per_query": target}
    assert 0.99 * target <= fitted.achieved["dollars_per_query"] <= target
    assert fitted.cost_model["source"] == "mean recorded dollars per model on these rows"
    assert np.allclose(
        fitted.offsets,
        [-fitted.cost_model["lambda"] * c for c in fitted.cost_model["expected_dollars"].values()],
    )
    report = evaluate(run, tmp_path / "eval")
    router = report["overall"]["router"]
    reached = (fitted.achieved["dollars_per_query"], router["dollars_per_query"])
    print(f"cost target {target}: calibration rows vs test rows {reached}")
    assert router["target"] == {"cost_per_query": target}
    assert router["dollars_per_query"] == pytest.approx(target, rel=0.10)
    assert report["meta"]["calibration"]["offsets"] == fitted.offsets


def test_route_honours_the_file_and_calibration_false_ignores_it(run, tmp_path):
    raw_report = json.loads((run / "report.json").read_text())["overall"]["router"]
    calibrate(run, "target.share=0.5")
    test = load_routing_splits(limit=3000).test
    router = load_router(run)
    routes = router.route(test.prompts)
    calibrated_share = np.mean([r == "gpt-4" for r in routes])
    report = evaluate(run, tmp_path / "calibrated")["overall"]["router"]
    assert report["route_share"]["gpt-4"] == pytest.approx(calibrated_share)
    router.calibration = None
    raw_share = np.mean([r == "gpt-4" for r in router.route(test.prompts)])
    assert abs(raw_share - calibrated_share) > 0.2  # the calibration moved the router

    raw = evaluate(run, tmp_path / "raw", "calibration=false")["overall"]["router"]
    assert raw["target"] is None
    assert raw["route_share"]["gpt-4"] == pytest.approx(raw_share)
    assert raw["route_share"] == raw_report["route_share"]  # training's own uncalibrated report
    assert raw["apgr"] == report["apgr"]  # threshold metrics read the raw probabilities either way
    assert "Calibration applied" not in (tmp_path / "raw" / "report.md").read_text()


def test_an_export_carries_the_calibration_and_loads_back_identically(run, tmp_path):
    calibrate(run, "target.share=0.3")
    folder = export_router(run, "alice/calibrated-router", tmp_path / "export")
    assert (folder / "calibration.json").read_text() == (run / "calibration.json").read_text()
    from_run, from_folder = load_router(run), load_router(folder)
    assert from_folder.calibration == from_run.calibration
    prompts = load_routing_splits(limit=3000).test.prompts[:200]
    assert from_folder.route(prompts) == from_run.route(prompts)
    card = (folder / "README.md").read_text()
    assert "## Operating point" in card and "with target **share 0.3 of gpt-4**" in card
    # calibrating the export folder itself writes into it
    calibrate(folder, "target.share=0.6")
    assert load_router(folder).calibration.target == {"share": 0.6, "model": "gpt-4"}


def test_prompts_of_ones_own(run, tmp_path, capsys):
    test = load_routing_splits(limit=3000).test
    prompts = tmp_path / "traffic.jsonl"
    lines = [json.dumps({"prompt": p}) for p in test.prompts[:300]]
    lines += [json.dumps({"question": p}) for p in test.prompts[300:400]]
    prompts.write_text("\n".join(lines) + "\n")
    fitted = calibrate(run, "target.share=0.4", f"prompts={prompts}")
    assert fitted.fitted_on == {"source": "prompts file traffic.jsonl", "rows": 400}
    assert fitted.achieved["dollars_per_query"] is None
    assert np.mean([r == "gpt-4" for r in load_router(run).route(test.prompts[:400])]) == 0.4
    fitted = calibrate(run, "target.cost_per_query=0.001", f"prompts={prompts}")
    assert "the router's training table routellm/gsm8k+mmlu (1804 rows)" in fitted.cost_model["source"]
    assert fitted.achieved["dollars_per_query"] <= 0.001
    assert "expected dollars per query: mean recorded dollars per model" in capsys.readouterr().out
    prompts.write_text('{"prompt": "fine"}\n{"text": "no prompt key"}\n')
    with pytest.raises(ValueError, match=r'traffic.jsonl:2: each line needs a non-empty string "prompt"'):
        calibrate(run, "target.share=0.4", f"prompts={prompts}")


def test_targets_are_checked_before_anything_is_loaded(tmp_path):
    from rl_router.config import typed

    for overrides, message in [
        ([], r"give exactly one target: target.share=<0..1> .* or target.cost_per_query=<usd>"),
        (["target.share=0.5", "target.cost_per_query=0.001"], r"give exactly one target"),
        (["target.share=1.5"], r"target.share=1.5: use a share of queries in \[0, 1\]"),
        (["target.cost_per_query=-1"], r"target.cost_per_query=-1.0: use dollars per query > 0"),
        (["target.model=gpt-4", "target.cost_per_query=0.001"], r"target.model='gpt-4' names a share"),
    ]:
        with pytest.raises(ValueError, match=message):
            typed(compose("calibrate", [f"checkpoint={tmp_path}", *overrides]))


def test_unknown_target_model_and_a_tampered_file(run):
    with pytest.raises(ValueError, match=r"target.model='gpt-5' is not one of the router's candidates"):
        calibrate(run, "target.share=0.5", "target.model=gpt-5")
    calibrate(run, "target.share=0.5")
    path = run / "calibration.json"
    path.write_text(path.read_text().replace('"share": 0.5', '"share": -0.5'))
    with pytest.raises(CalibrationError, match=r"calibration.json: target.share=-0.5 is outside"):
        load_router(run)


def test_the_cli_writes_the_file_and_lists_the_command(run, tmp_path):
    cli = [sys.executable, "-c", "from rl_router.cli import main; main()"]
    (tmp_path / "cwd").mkdir()
    help_text = subprocess.run([*cli, "--help"], capture_output=True, text=True, check=True).stdout
    assert "calibrate" in help_text.splitlines()[0]
    assert "  calibrate  set a policy router's operating point" in help_text
    done = subprocess.run(
        [*cli, "calibrate", f"checkpoint={run}", "target.share=0.25", "rows=500"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path / "cwd",
    )
    assert done.returncode == 0, done.stderr
    assert f"wrote {run / 'calibration.json'}" in done.stdout
    saved = json.loads((run / "calibration.json").read_text())
    assert saved["target"] == {"share": 0.25, "model": "gpt-4"}
    assert saved["fitted_on"]["rows"] == 500
    assert "seed-0 random subset of its 1804 rows" in saved["fitted_on"]["source"]
    assert saved["achieved"]["route_share"]["gpt-4"] == 0.25
    assert list((tmp_path / "cwd").iterdir()) == []  # Hydra wrote no log file or output folder
