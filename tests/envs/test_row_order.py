"""RowOrder: the row order every dataset env shares."""

from __future__ import annotations

import numpy as np
import pytest

from envs.row_order import RowOrder


def test_each_pass_is_a_permutation_and_equal_seeds_give_equal_orders():
    a, b = RowOrder(5, shuffle=True), RowOrder(5, shuffle=True)
    ra, rb = np.random.default_rng(7), np.random.default_rng(7)
    a.new_pass(ra), b.new_pass(rb)
    seen_a = [a.next(ra) for _ in range(15)]
    assert seen_a == [b.next(rb) for _ in range(15)]
    passes = [seen_a[i : i + 5] for i in range(0, 15, 5)]
    assert all(sorted(p) == [0, 1, 2, 3, 4] for p in passes)
    assert len({tuple(p) for p in passes}) > 1  # a new permutation per pass


def test_start_exhausted_draws_first_and_unshuffled_keeps_dataset_order():
    rng = np.random.default_rng(0)
    rows = RowOrder(4, shuffle=True, start_exhausted=True)
    first = [rows.next(rng) for _ in range(4)]
    assert sorted(first) == [0, 1, 2, 3] and first != [0, 1, 2, 3]
    plain = RowOrder(4, shuffle=False, start_exhausted=True)
    assert [plain.next(rng) for _ in range(6)] == [0, 1, 2, 3, 0, 1]


def test_state_round_trip_goes_on_identically_and_a_wrong_size_is_refused():
    rng = np.random.default_rng(3)
    rows = RowOrder(6, shuffle=True)
    rows.new_pass(rng)
    [rows.next(rng) for _ in range(4)]
    saved, rng_state = rows.state_dict(), rng.bit_generator.state
    ahead = [rows.next(rng) for _ in range(8)]
    again, rng2 = RowOrder(6, shuffle=True), np.random.default_rng()
    again.load_state_dict(saved)
    rng2.bit_generator.state = rng_state
    assert [again.next(rng2) for _ in range(8)] == ahead
    with pytest.raises(ValueError, match="a row order over 6 rows at cursor 4, not over this env's 5"):
        RowOrder(5, shuffle=True).load_state_dict(saved)
    with pytest.raises(ValueError, match="at least one row"):
        RowOrder(0, shuffle=True)


def test_end_pass_draws_the_next_permutation_only_when_a_row_is_next_taken():
    rows, rng = RowOrder(4, shuffle=True), np.random.default_rng(5)
    rows.next(rng)
    state = rng.bit_generator.state
    rows.end_pass()
    assert rng.bit_generator.state == state and rows.cursor == 4  # ending a pass draws nothing
    fresh = np.random.default_rng(5)
    fresh.bit_generator.state = state
    assert [rows.next(rng) for _ in range(4)] == fresh.permutation(4).tolist()
