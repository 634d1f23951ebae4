"""Calibration: the share and cost fits, the decision rule, and what `load_calibration` refuses.

The router tests use a run directory of random weights (no training); `tests/eval/test_calibrate.py`
calibrates a trained run and checks the targets on held-out rows.
"""

from __future__ import annotations

import doctest
import json
import logging

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from rl_router import load_router
from rl_router.checkpoint import save_checkpoint
from rl_router.data.features import DEFAULT_FEATURES, feature_dim
from rl_router.routers import calibration as calibration_module
from rl_router.routers.calibration import (
    Calibration,
    CalibrationError,
    decide,
    fit_cost_offsets,
    fit_share_offsets,
    load_calibration,
    share_margins,
)
from rl_router.routers.policy import build_policy, pool_descriptors
from rl_router.run import RUN_CONFIG

QUERY_DIM = feature_dim(DEFAULT_FEATURES)  # the default config's query features

NAMES = ["mixtral-8x7b", "gpt-4"]


def log_probs(n: int, m: int, seed: int = 0) -> np.ndarray:
    logits = np.random.default_rng(seed).normal(scale=2.0, size=(n, m))
    return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))


def test_doctests():
    assert doctest.testmod(calibration_module).failed == 0


@pytest.mark.parametrize("share", [0.0, 0.1, 0.2, 0.5, 0.8, 0.97, 1.0])
@pytest.mark.parametrize("model", [0, 2])
def test_share_fit_reaches_the_target_share_on_its_rows(share, model):
    lp = log_probs(1000, 3)
    offsets = fit_share_offsets(lp, model, share)
    assert np.count_nonzero(np.delete(offsets, model)) == 0  # only the target model moves
    assert (decide(lp, offsets) == model).mean() == pytest.approx(share, abs=0.5 / 1000)


def test_share_fit_leaves_the_other_candidates_in_their_raw_order():
    lp = log_probs(500, 3, seed=1)
    choice = decide(lp, fit_share_offsets(lp, 2, 0.3))
    rest = choice != 2
    assert np.array_equal(choice[rest], np.delete(lp, 2, axis=1)[rest].argmax(axis=1))


def test_tied_margins_move_together_to_the_closest_reachable_share():
    # a saturated router: 10 rows with one margin, 10 with another; 0.3 of 20 rows is not reachable
    lp = np.log(np.array([[0.9, 0.1]] * 10 + [[0.6, 0.4]] * 10))
    assert (decide(lp, fit_share_offsets(lp, 1, 0.3)) == 1).mean() == 0.5
    assert (decide(lp, fit_share_offsets(lp, 1, 0.2)) == 1).mean() == 0.0
    assert (decide(lp, fit_share_offsets(lp, 1, 0.25)) == 1).mean() == 0.0  # equally close: the lower


def test_share_margins_of_three_candidates():
    lp = np.log(np.array([[0.2, 0.5, 0.3]]))
    assert share_margins(lp, 0)[0] == pytest.approx(np.log(0.5 / 0.2))
    assert share_margins(lp, 1)[0] == pytest.approx(np.log(0.3 / 0.5))


def test_cost_fit_is_at_most_the_target_and_within_one_row_of_it():
    lp = log_probs(2000, 3, seed=2)
    c = np.array([0.001, 0.01, 0.002])
    for target in (0.0012, 0.003, 0.006, 0.0095):
        offsets, lam = fit_cost_offsets(lp, c, target)
        assert np.allclose(offsets, -lam * c)
        mean = c[decide(lp, offsets)].mean()
        assert mean <= target
        assert target - mean <= (c.max() - c.min()) / 2000 * 3  # a few rows' switch at most


def test_cost_fit_uses_recorded_row_dollars_when_given():
    lp = log_probs(1000, 2, seed=3)
    rows = np.random.default_rng(4).uniform([0.5, 5.0], [1.5, 15.0], size=(1000, 2))
    offsets, _ = fit_cost_offsets(lp, rows.mean(axis=0), 4.0, row_dollars=rows)
    choice = decide(lp, offsets)
    reached = rows[np.arange(1000), choice].mean()
    assert 4.0 - 0.02 <= reached <= 4.0


def test_cost_fit_moves_a_cheap_router_up_with_a_negative_lambda():
    lp = np.log(np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4]]))  # all to the cheap model
    offsets, lam = fit_cost_offsets(lp, np.array([1.0, 3.0]), 2.0)
    assert lam < 0
    assert np.array([1.0, 3.0])[decide(lp, offsets)].mean() == 2.0


def test_cost_target_below_the_cheapest_is_an_error_and_above_the_dearest_saturates():
    lp = log_probs(100, 2)
    c = np.array([1.0, 10.0])
    with pytest.raises(ValueError, match=r"cost_per_query=0.5 is below \$1 per query"):
        fit_cost_offsets(lp, c, 0.5)
    with pytest.warns(UserWarning, match=r"at or above \$10 per query.*every query goes to them"):
        offsets, _ = fit_cost_offsets(lp, c, 12.0)
    assert (decide(lp, offsets) == 1).all()
    with pytest.raises(ValueError, match="same expected cost"):
        fit_cost_offsets(lp, np.array([2.0, 2.0]), 2.0)


# ------------------------------------------------------------------ calibration.json and the router


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A run directory holding the default config and a step-64 checkpoint of random weights."""
    from hydra import compose, initialize_config_dir

    from rl_router.cli import conf_dir
    from rl_router.registry import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["debug=tiny"])
    run = tmp_path_factory.mktemp("calibrated") / "run"
    run.mkdir()
    OmegaConf.save(cfg, run / RUN_CONFIG, resolve=True)
    torch.manual_seed(0)
    policy = build_policy(cfg.policy, pool_descriptors(cfg.pool))
    save_checkpoint(run, 64, policy, torch.optim.Adam(policy.parameters()), {"global_step": 64})
    return run


@pytest.fixture
def run(run_dir):
    """The run directory, its calibration.json removed again after the test."""
    yield run_dir
    (run_dir / "calibration.json").unlink(missing_ok=True)


def probe(n: int = 64) -> np.ndarray:
    x = np.random.default_rng(1).standard_normal((n, QUERY_DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def share_calibration(router, share: float = 0.25) -> Calibration:
    lp = router.log_probs(probe())
    offsets = fit_share_offsets(lp, 1, share)
    choice = decide(lp, offsets)
    return Calibration(
        target={"share": share, "model": "gpt-4"},
        models=router.model_names,
        offsets=[float(v) for v in offsets],
        weights_sha256=router.weights_digest(),
        fitted_on={"source": "probe", "rows": len(lp)},
        achieved={
            "route_share": {n: float(np.mean(choice == j)) for j, n in enumerate(NAMES)},
            "dollars_per_query": None,
        },
    )


def test_a_run_applies_its_calibration_in_decide_and_route_but_not_probs(run):
    run_dir = run
    raw = load_router(run_dir)
    assert raw.calibration is None
    calibration = share_calibration(raw, 0.25)
    calibration.save(run_dir)
    router = load_router(run_dir)
    assert router.calibration == calibration
    assert np.array_equal(router.probs(probe()), raw.probs(probe()))
    assert (router.decide(probe()) == 1).mean() == 0.25
    assert np.array_equal(raw.decide(probe()), raw.probs(probe()).argmax(axis=1))
    # one of the run's checkpoints reads the run's calibration too
    step = load_router(run_dir / "checkpoints" / "step_0000000064")
    assert step.calibration == calibration


def test_a_calibration_of_other_weights_is_not_applied(run, caplog):
    run_dir = run
    router = load_router(run_dir)
    calibration = share_calibration(router)
    calibration.weights_sha256 = "0" * 64
    calibration.save(run_dir)
    with caplog.at_level(logging.WARNING):
        assert load_router(run_dir).calibration is None
    assert "fitted for other weights" in caplog.text


@pytest.fixture(scope="module")
def saved(run_dir) -> dict:
    """A valid calibration.json's contents for the run's router."""
    return share_calibration(load_router(run_dir)).to_json()


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d.update(offsets=[0.0]), r"offsets must be a list of 2 numbers"),
        (lambda d: d.update(offsets=[0.0, "0.5"]), r"offsets\[1\] must be a finite number, not '0.5'"),
        (lambda d: d["offsets"].__setitem__(0, True), r"offsets\[0\] must be a finite number, not True"),
        (lambda d: d["target"].update(share=-0.2), r"target.share=-0.2 is outside \[0, 1\]"),
        (lambda d: d["target"].update(model="gpt-5"), r"target.model='gpt-5' is not one of the candidates"),
        (lambda d: d.update(models=["a", "b"]), r"models=\['a', 'b'\] differs from the router's candidates"),
        (lambda d: d.update(_target_="os.system"), r"the file must hold exactly .* unknown \['_target_'\]"),
        (lambda d: d["fitted_on"].update(rows="many"), r"fitted_on.rows must be a positive integer"),
        (lambda d: d["achieved"]["route_share"].update(x=1), r"achieved.route_share must hold exactly"),
        (lambda d: d.update(weights_sha256="abc"), r"weights_sha256 must be 64 lowercase hex digits"),
        (lambda d: d.update(format_version=2), r"format_version=2"),
        (lambda d: d.update(cost_model={"lambda": 1}), r"cost_model must hold exactly"),
    ],
)
def test_a_tampered_calibration_is_refused_naming_the_file_and_field(saved, tmp_path, edit, field):
    data = json.loads(json.dumps(saved))
    edit(data)
    (tmp_path / "calibration.json").write_text(json.dumps(data))
    with pytest.raises(CalibrationError, match=rf"{tmp_path / 'calibration.json'}: {field}"):
        load_calibration(tmp_path, NAMES)


def test_load_router_refuses_a_tampered_calibration(run, saved):
    (run / "calibration.json").write_text(json.dumps({**saved, "offsets": [0.0, "1"]}))
    with pytest.raises(CalibrationError, match=r"run/calibration.json: offsets\[1\] must be a finite number"):
        load_router(run)


def test_non_finite_numbers_and_non_json_are_refused(saved, tmp_path):
    assert load_calibration(tmp_path, NAMES) is None  # no file: no calibration
    path = tmp_path / "calibration.json"
    path.write_text(json.dumps(saved, indent=2).replace('"offsets": [\n    0.0', '"offsets": [\n    NaN'))
    with pytest.raises(CalibrationError, match=r"NaN is not a JSON number this file may hold"):
        load_calibration(tmp_path, NAMES)
    path.write_text("not json")
    with pytest.raises(CalibrationError, match=r"calibration.json: not valid JSON"):
        load_calibration(tmp_path, NAMES)
    path.write_text(json.dumps(saved))
    assert load_calibration(tmp_path, NAMES).to_json() == saved
