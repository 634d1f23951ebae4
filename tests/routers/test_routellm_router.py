"""RouteLLM's router interface over a policy router: the score is the strong candidate's probability."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from policy_helpers import make_run

from rl_router import load_router
from rl_router.routers.calibration import Calibration
from rl_router.routers.routellm_router import RouteLLMRouter

PROMPTS = ["What is 12 * 7?", "Name the capital of Peru.", "Explain photosynthesis in one line."]


@pytest.fixture
def run_dir(compose, tmp_path):
    return make_run(compose(["debug=tiny"]), tmp_path / "run")


def test_score_is_the_dearest_candidates_probability(run_dir):
    adapter = RouteLLMRouter(run_dir)
    assert adapter.strong_model == "gpt-4"  # dearer than mixtral-8x7b
    router = load_router(run_dir)
    expected = router.probs(router.embed(PROMPTS))[:, router.model_names.index("gpt-4")]
    assert np.allclose(adapter.calculate_strong_win_rates(PROMPTS), expected, atol=1e-6)
    assert adapter.calculate_strong_win_rate(PROMPTS[0]) == pytest.approx(float(expected[0]), abs=1e-6)
    pair = SimpleNamespace(strong="S", weak="W")
    t = float(expected[1])
    assert adapter.route(PROMPTS[1], t - 1e-6, pair) == "S"
    assert adapter.route(PROMPTS[1], t + 1e-3, pair) == "W"
    assert str(adapter) == "rl_router"


def test_calibrated_router_at_threshold_half_decides_like_route(run_dir):
    router = load_router(run_dir)
    lp = router.log_probs(router.embed(PROMPTS))
    # an offset that puts the middle prompt's margin at zero moves the decisions of the others
    offsets = [0.0, float(lp[1, 0] - lp[1, 1]) + 1e-3]
    router.calibration = Calibration(
        target={}, models=router.model_names, offsets=offsets, weights_sha256="", fitted_on={}, achieved={}
    )
    adapter = RouteLLMRouter(router=router)
    pair = SimpleNamespace(strong="gpt-4", weak="mixtral-8x7b")
    assert [adapter.route(p, 0.5, pair) for p in PROMPTS] == router.route(PROMPTS)


def test_unknown_strong_model_is_refused_naming_the_candidates(run_dir):
    with pytest.raises(ValueError, match=r"strong_model='gpt-5'.*mixtral-8x7b"):
        RouteLLMRouter(run_dir, strong_model="gpt-5")


def test_score_memo_keeps_the_most_recently_asked_prompts(run_dir):
    adapter = RouteLLMRouter(run_dir, memo_size=2)
    first = adapter.calculate_strong_win_rate(PROMPTS[0])
    adapter.calculate_strong_win_rate(PROMPTS[1])
    adapter.calculate_strong_win_rate(PROMPTS[0])  # asked again: now the newest
    adapter.calculate_strong_win_rate(PROMPTS[2])  # evicts PROMPTS[1], the least recently asked
    assert list(adapter._memo) == [PROMPTS[0], PROMPTS[2]]
    assert adapter.calculate_strong_win_rate(PROMPTS[0]) == first
    with pytest.raises(ValueError, match=r"memo_size=0"):
        RouteLLMRouter(run_dir, memo_size=0)
