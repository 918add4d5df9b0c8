"""The local search before HiGHS: only plans that meet every row of the day's own model, the same one each time."""

from __future__ import annotations

import random

import numpy as np
import pytest

from npa import feasible
from npa.feasible import local_search
from npa.plan import (
    _GAP_POINTS,
    SLOTS,
    _basket,
    _build,
    _costs,
    _Model,
    _slot_candidates,
    eligible_pool,
)
from npa.profile import parse_profile, targets

PROFILE = {"sex": "female", "age": 30, "height_cm": 165, "weight_kg": 60, "activity": "moderate", "goal": "lose"}


def first_day(seed: int) -> _Model:
    profile = parse_profile(PROFILE)
    pool = eligible_pool(profile)
    costs = _costs(profile, pool)
    slots = SLOTS[profile.meals_per_day]
    by_slot = _slot_candidates(slots, _basket(pool, costs, targets(profile), random.Random(seed)), False)
    return _build(slots, by_slot, targets(profile), costs, None, False)


def search(model: _Model, seed: int, steps: int = 200) -> np.ndarray | None:
    return local_search(
        model.c,
        model.lower,
        model.upper,
        np.vstack(model.rows),
        np.array(model.row_lo),
        np.array(model.row_hi),
        len(model.pairs),
        model.groups,
        [s for s, _ in model.pairs],
        random.Random(seed),
        gap_points=_GAP_POINTS,
        steps=steps,
    )


@pytest.fixture(scope="module")
def solved() -> tuple[_Model, np.ndarray]:
    for seed in range(10):  # the first basket whose first day the search finds
        model = first_day(seed)
        x = search(model, seed)
        if x is not None:
            return model, x
    raise AssertionError("the search found none of ten first days")


def test_a_found_plan_meets_every_row_bound_and_the_gap(solved: tuple[_Model, np.ndarray]) -> None:
    model, x = solved
    n = len(model.pairs)
    activity = np.vstack(model.rows) @ x
    assert np.all(activity >= np.array(model.row_lo) - 1e-6)
    assert np.all(activity <= np.array(model.row_hi) + 1e-6)
    assert np.array_equal(x[: 2 * n], np.round(x[: 2 * n]))
    assert np.array_equal(x[n : 2 * n], (x[:n] > 0).astype(float))  # y is "the food is eaten"
    assert float(model.c @ x) <= model.c[-1] + _GAP_POINTS + 1e-9  # within HiGHS's 1 % of the offset
    assert 2 <= sum(1 for v in x[:n] if v > 0) <= 20


def test_same_seed_same_plan(solved: tuple[_Model, np.ndarray]) -> None:
    model, x = solved
    again = None
    for seed in range(10):
        if first_day(seed).pairs == model.pairs:
            again = search(first_day(seed), seed)
            break
    assert again is not None and np.array_equal(again, x)


def test_the_final_check_refuses_a_plan_that_breaks_a_row(solved: tuple[_Model, np.ndarray]) -> None:
    model, x = solved
    n = len(model.pairs)
    matrix = np.vstack(model.rows)
    args = (model.c, model.lower, model.upper, matrix, np.array(model.row_lo), np.array(model.row_hi), n)
    assert feasible._verify(x[:n].copy(), *args, _GAP_POINTS) is not None
    assert feasible._verify(x[:n] * 2, *args, _GAP_POINTS) is None  # twice every portion: the energy band
    lighter = x[:n].copy()
    lighter[int(np.argmax(x[:n]))] = 0  # the largest portion left out: a rule of the day breaks
    assert feasible._verify(lighter, *args, _GAP_POINTS) is None


def test_a_day_no_move_can_mend_gets_no_plan(solved: tuple[_Model, np.ndarray]) -> None:
    model, x = solved
    n = len(model.pairs)
    # Pin every food to the plan found, then ask the day for 10 % more energy: only pinned
    # columns touch the energy row, so no move can mend it.
    lower, upper = model.lower.copy(), model.upper.copy()
    lower[:n] = upper[:n] = x[:n]
    lower[n : 2 * n] = upper[n : 2 * n] = x[n : 2 * n]
    assert model.energy is not None
    row = next(i for i, r in enumerate(model.rows) if np.array_equal(r, model.energy))
    row_lo = np.array(model.row_lo)
    row_lo[row] = float(model.energy @ x) * 1.1
    found = local_search(
        model.c,
        lower,
        upper,
        np.vstack(model.rows),
        row_lo,
        np.array(model.row_hi),
        n,
        model.groups,
        [s for s, _ in model.pairs],
        random.Random(0),
        gap_points=_GAP_POINTS,
        steps=10_000,
    )
    assert found is None
