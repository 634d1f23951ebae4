"""LoCoMo loader: the shipped copy, BudgetMem's conversation splits, stratified QA, chunks."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from rl_router.data.locomo import (
    ASSET,
    LocomoDataConfig,
    chunk_conversation,
    load_locomo,
    locomo_splits,
    stratified_sample,
)

FULL = Path(__file__).resolve().parents[3] / "shared" / "data" / "locomo" / "locomo10.json"


def test_shipped_copy_has_ten_conversations_without_category_5():
    conversations = load_locomo()
    assert len(conversations) == 10
    categories = Counter(q["category"] for c in conversations for q in c["qa"])
    assert set(categories) == {1, 2, 3, 4} and sum(categories.values()) == 1540
    assert ASSET.stat().st_size < 500_000  # compact: text and QA only
    assert (ASSET.parent / "NOTICE.md").read_text().count("non-commercial") >= 1


def test_splits_follow_budgetmem_conversation_indices():
    train, validation, test = locomo_splits()
    convs = [c["sample_id"] for c in load_locomo()]
    assert {r["conversation"] for r in train} == set(convs[:6])
    assert {r["conversation"] for r in validation} == set(convs[6:8])
    assert {r["conversation"] for r in test} == set(convs[8:])
    assert (len(train), len(validation), len(test)) == (885, 341, 314)
    row = test[0]
    assert row["golden_answers"] == [row["answer"]] and row["chunks"] and row["category"] in (1, 2, 3, 4)


def test_per_conversation_subsample_is_stratified_and_seeded():
    _, _, test = locomo_splits(per_conversation=20)
    assert len(test) == 40
    for conv in {r["conversation"] for r in test}:
        assert len({r["category"] for r in test if r["conversation"] == conv}) >= 3
    again = locomo_splits(per_conversation=20).test
    assert [r["id"] for r in again] == [r["id"] for r in test]
    other = locomo_splits(per_conversation=20, seed=1).test
    assert [r["id"] for r in other] != [r["id"] for r in test]


def test_stratified_sample_keeps_every_category_and_the_count():
    qa = [{"category": 4}] * 50 + [{"category": 3}] * 2 + [{"category": 1}] * 10
    chosen = stratified_sample(qa, 10, seed=0)
    cats = Counter(qa[i]["category"] for i in chosen)
    assert len(chosen) == 10 and cats[3] >= 1 and cats[4] > cats[1]


def test_chunks_respect_the_token_cap_and_keep_every_turn():
    conv = load_locomo()[0]
    chunks = chunk_conversation(conv, chunk_tokens=256)
    turns = sum(len(s["turns"]) for s in conv["sessions"])
    assert sum(c.count("\n") + 1 for c in chunks) == turns
    long_turns = [c for c in chunks if len(c.split()) > 256]
    assert all("\n" not in c for c in long_turns)  # only a single over-long turn may exceed the cap


def test_config_refuses_overlapping_splits():
    with pytest.raises(ValueError, match="conversation 6 is in both"):
        LocomoDataConfig(validation=[6, 7], test=[6])
    with pytest.raises(ValueError, match="categories"):
        LocomoDataConfig(categories=[5])


@pytest.mark.skipif(not FULL.is_file(), reason="../shared/data/locomo/locomo10.json not present")
def test_full_file_reads_like_the_shipped_copy():
    full = load_locomo(FULL)
    shipped = load_locomo()
    assert full == shipped
    assert len(locomo_splits(path=str(FULL)).test) == 314
