"""The cost ledger charges list price per call, refuses unpriced models, and sums by model and tag."""

import pytest

from rewards.ledger import CostLedger, UnpricedModelError, check_priced, worst_case_usd
from rl_router.pool.types import ModelDescriptor, Result, SamplingParams

SMALL = ModelDescriptor("small", "fake", price_in=0.06, price_out=0.06)
LARGE = ModelDescriptor(
    "large", "fake", price_in=0.88, price_out=1.76, sampling=SamplingParams(max_tokens=64)
)


def test_unpriced_model_is_an_error_naming_it():
    free = ModelDescriptor("free-lunch", "fake")
    with pytest.raises(UnpricedModelError, match=r"\['free-lunch'\].*price_in"):
        CostLedger([SMALL, free])
    with pytest.raises(UnpricedModelError, match="memory_tiers.pool"):
        check_priced([free], where="memory_tiers.pool")
    assert CostLedger([SMALL, free], require_prices=False).charge("free-lunch", 10, 10) == 0.0


def test_charges_sum_by_model_and_tag_and_cache_hits_still_pay():
    ledger = CostLedger([SMALL, LARGE])
    a = ledger.charge("small", 1_000_000, 0, tag="filter")
    b = ledger.charge_result(
        "large", Result(text="x", input_tokens=500_000, output_tokens=250_000, cache_hit=True), tag="summary"
    )
    c = ledger.charge_result("large", Result(error="boom"), tag="summary")
    assert a == pytest.approx(0.06) and b == pytest.approx(0.44 + 0.44) and c == 0.0
    assert ledger.total_usd == pytest.approx(0.94)
    assert ledger.by_model()["large"]["calls"] == 2 and ledger.by_model()["large"]["cache_hits"] == 1
    assert ledger.by_tag()["summary"]["errors"] == 1 and ledger.by_tag()["filter"]["usd"] == pytest.approx(
        0.06
    )
    with pytest.raises(KeyError, match="not in the ledger's pool"):
        ledger.charge("medium", 1, 1)
    ledger.reset()
    assert ledger.calls == 0 and ledger.total_usd == 0.0


def test_worst_case_uses_the_reply_cap():
    assert worst_case_usd(LARGE, 1000) == pytest.approx((1000 * 0.88 + 64 * 1.76) / 1e6)
    assert worst_case_usd(LARGE, 1000, max_tokens=0) == pytest.approx(0.00088)
