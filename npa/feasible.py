"""A seeded local search that finds a day's plan before the branch and cut is asked to.

Theory of operation: a day's model (``npa.plan._build``) is a feasibility problem in disguise.
Its objective is a constant offset plus costs that are zero for a plan inside every soft band
(energy within +-1.5 %, fat and carbohydrate within the AMDR) without disliked or soft-restricted
foods, and HiGHS stops at an absolute gap of 2 points. Profiling showed that all of a slow day
(100 ms - 2 s) is HiGHS's search for a first integer plan: its LP bound is the offset from the
root on. So a plan whose costs are within those 2 points of the offset is one HiGHS would have
accepted too, and finding one by a cheaper search changes nothing about the rules it meets.

The search works on the model's own matrix (the same rows, bounds and costs, nothing restated):
the counts ``n`` are the variables, each ``y`` is derived (``y = n > 0``, which satisfies the
linking rows by construction), each slack is derived (the least value its row needs; its cost is
the soft penalty). Hard rows carry weights that grow while they stay violated (breakout, as in
the feasibility-jump heuristic of Luteberget and Sartor, 2023); a move is one more or one fewer
unit of a food, one unit moved from a food of a meal to another of the same meal (rice for
chicken, the other bread), or a food of several units swapped whole for one unit of another of
its meal and group; a food just changed is left alone for a few steps (tabu). Rows that no free
food touches are constants: a broken one ends the search at once (HiGHS then proves the day
impossible, fast). Ties are broken by a seeded ``random.Random``. After a bounded number of
steps the caller falls back to HiGHS; an answer is only returned after it has been checked
against every row and bound of the model, integrality and the objective bound, so a bug in the
search shows as a fallback, never as a plan that breaks a rule.
"""

from __future__ import annotations

import random  # noqa: TID251 - only a seeded random.Random passed in by the caller
from collections.abc import Sequence

import numpy as np

__all__ = ["local_search"]

_SOFT_WEIGHT = 0.05  # a point of soft cost against a unit of (scaled) hard violation
_EPS = 1e-9
_BUMP = 1.5
_TABU = 4  # steps during which a food just changed is not changed back


def local_search(
    c: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    matrix: np.ndarray,
    row_lo: np.ndarray,
    row_hi: np.ndarray,
    n_pairs: int,
    groups: Sequence[int],
    meals: Sequence[int],
    rng: random.Random,
    *,
    gap_points: float,
    steps: int,
) -> np.ndarray | None:
    """A full solution vector within ``gap_points`` of the offset bound, or ``None``.

    Columns: ``n`` (``n_pairs`` integers), ``y`` (``n_pairs`` binaries), then continuous slacks
    whose last column is the fixed objective offset. ``groups[i]`` names the swap group of pair
    ``i`` (a meal and a role); ``-1``: not swappable. ``meals[i]`` is its meal.
    """
    width = matrix.shape[1]
    n = n_pairs
    if n == 0 or width < 2 * n + 1:
        return None
    slack_cols = np.arange(2 * n, width - 1)
    has_slack = (matrix[:, slack_cols] != 0).any(axis=1) if len(slack_cols) else np.zeros(len(row_lo), bool)
    nz_count = (matrix != 0).sum(axis=1)
    link = np.zeros(len(row_lo), bool)
    for r in np.nonzero(nz_count == 2)[0]:
        cols = np.nonzero(matrix[r])[0]
        link[r] = cols[0] < n and cols[1] == cols[0] + n
    keep = ~link
    a_n, a_y = matrix[keep, :n], matrix[keep, n : 2 * n]
    offset = matrix[keep, width - 1] * lower[width - 1]
    lo, hi = row_lo[keep] - offset, row_hi[keep] - offset
    soft = has_slack[keep]
    # The cost of a soft row's violation: its slack column's cost (one slack per row).
    soft_cost = np.zeros(len(lo))
    for r in np.nonzero(soft)[0]:
        k = slack_cols[np.nonzero(matrix[np.nonzero(keep)[0][r], slack_cols])[0][0]]
        soft_cost[r] = c[k]
    scale = np.maximum(np.abs(a_n).max(axis=1), np.abs(a_y).max(axis=1))
    scale[scale == 0] = 1.0
    weight_soft = np.where(soft, soft_cost * _SOFT_WEIGHT, 0.0)
    w = np.where(soft, 0.0, 1.0 / scale)
    pair_cost = c[n : 2 * n]
    pinned = lower[:n] == upper[:n]
    up = upper[:n].copy()
    up[(pair_cost > 0) & ~pinned] = 0.0  # costly foods are left to HiGHS
    low = lower[:n].copy()
    free = np.nonzero(~pinned & (up > 0))[0]
    x = low.copy()
    group = np.asarray(groups)
    if len(free) == 0:
        return _verify(x, c, lower, upper, matrix, row_lo, row_hi, n, gap_points)
    act = a_n @ x + a_y @ (x > 0)

    def violations(values: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.maximum(lo - values, 0.0) + np.maximum(values - hi, 0.0)
        return out

    # Rows no free food touches are constants: a hard one broken means no plan for the search.
    touched = (a_n[:, free] != 0).any(axis=1) | (a_y[:, free] != 0).any(axis=1)
    v = violations(act)
    if ((v > _EPS) & ~soft & ~touched).any():
        return None
    fixed_soft = float(soft_cost[~touched] @ v[~touched])
    a_n, a_y, lo, hi, act = a_n[touched], a_y[touched], lo[touched], hi[touched], act[touched]
    soft, soft_cost, scale = soft[touched], soft_cost[touched], scale[touched]
    weight_soft, w = weight_soft[touched], w[touched]
    fa_n, fa_y, f_up, f_low = a_n[:, free], a_y[:, free], up[free], low[free]
    f_group = group[free]
    f_meal = np.asarray(meals)[free]
    same_group = (f_group[:, None] == f_group[None, :]) & (f_group >= 0)[:, None]
    same_meal = f_meal[:, None] == f_meal[None, :]
    np.fill_diagonal(same_meal, False)
    singles = np.arange(len(free))
    none = np.full(len(free), -1)
    tabu_until = np.zeros(len(free), dtype=int)
    for step in range(steps):
        v = violations(act)
        hard = (v > _EPS) & ~soft
        if not hard.any() and fixed_soft + float(soft_cost @ v) <= gap_points:
            return _verify(x, c, lower, upper, matrix, row_lo, row_hi, n, gap_points)
        xf = x[free]
        on = xf > 0
        can_inc, can_dec = xf < f_up, xf > f_low
        d_inc = fa_n + fa_y * (~on)
        d_dec = -fa_n - fa_y * (xf == 1)
        # A move: ``src`` loses one unit (to ``src_to``), ``dst`` gains one; -1 where absent.
        # Pairs inside a meal (rice for chicken, the other bread); a food of several units swapped
        # whole for another of its meal and group.
        pair_src, pair_dst = np.nonzero(same_meal & (on & can_dec)[:, None] & can_inc[None, :])
        swap_src, swap_dst = np.nonzero(same_group & (xf >= 2)[:, None] & ~on[None, :])
        delta = np.concatenate(
            [
                d_inc,
                d_dec,
                d_dec[:, pair_src] + d_inc[:, pair_dst],
                -fa_n[:, swap_src] * xf[swap_src] - fa_y[:, swap_src] + fa_n[:, swap_dst] + fa_y[:, swap_dst],
            ],
            axis=1,
        )
        src = np.concatenate([none, singles, pair_src, swap_src])
        dst = np.concatenate([singles, none, pair_dst, swap_dst])
        src_to = np.concatenate([xf, xf - 1, xf[pair_src] - 1, np.zeros(len(swap_src))])
        allowed = np.concatenate([can_inc, can_dec, np.ones(len(pair_src) + len(swap_src), bool)])
        allowed &= (dst < 0) | (tabu_until[np.maximum(dst, 0)] <= step)
        allowed &= (src < 0) | (tabu_until[np.maximum(src, 0)] <= step)
        moved = act[:, None] + delta
        after = np.maximum(lo[:, None] - moved, 0.0) + np.maximum(moved - hi[:, None], 0.0)
        weights = w + weight_soft
        score = weights @ after - float(weights @ v)
        score[~allowed] = np.inf
        best = float(score.min())
        if not np.isfinite(best):
            return None
        if best >= -_EPS:
            if hard.any():
                w = np.where(hard, w * _BUMP, w)  # breakout: what stays violated weighs more
                continue
            # Only soft cost left and no move lowers it: a seeded step among the three best.
            order = np.argsort(score, kind="stable")[:3]
            k = int(order[rng.randrange(len(order))])
        else:
            ties = np.nonzero(score <= best + _EPS)[0]
            k = int(ties[rng.randrange(len(ties))])
        if src[k] >= 0:
            x[free[src[k]]] = src_to[k]
            tabu_until[src[k]] = step + _TABU
        if dst[k] >= 0:
            x[free[dst[k]]] += 1.0
            tabu_until[dst[k]] = step + _TABU
        act = act + delta[:, k]
    return None


def _verify(
    x: np.ndarray,
    c: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    matrix: np.ndarray,
    row_lo: np.ndarray,
    row_hi: np.ndarray,
    n: int,
    gap_points: float,
) -> np.ndarray | None:
    """The full vector for counts ``x`` (y and the least slacks derived) if it meets every row."""
    width = matrix.shape[1]
    full = lower.copy()
    full[:n] = x
    full[n : 2 * n] = (x > 0).astype(float)
    # Each slack column: the least value its rows need (rows are otherwise met exactly).
    base = matrix[:, : 2 * n] @ full[: 2 * n] + matrix[:, width - 1] * full[width - 1]
    for k in range(2 * n, width - 1):
        col = matrix[:, k]
        need = 0.0
        for r in np.nonzero(col)[0]:
            if base[r] < row_lo[r]:
                need = max(need, (row_lo[r] - base[r]) / col[r])
            if base[r] > row_hi[r]:
                need = max(need, (row_hi[r] - base[r]) / col[r])
        full[k] = max(lower[k], need)
    activity = matrix @ full
    tol = 1e-7 * np.maximum(1.0, np.abs(np.where(np.isfinite(row_lo), row_lo, 0.0)))
    tol_hi = 1e-7 * np.maximum(1.0, np.abs(np.where(np.isfinite(row_hi), row_hi, 0.0)))
    if not ((activity >= row_lo - tol).all() and (activity <= row_hi + tol_hi).all()):
        return None
    if not ((full >= lower - _EPS).all() and (full <= upper + _EPS).all()):
        return None
    if not np.array_equal(full[: 2 * n], np.round(full[: 2 * n])):
        return None
    # The bound: the offset plus the costs of pinned foods (in every plan of the model).
    bound = float(c[width - 1] * lower[width - 1] + c[n : 2 * n] @ lower[n : 2 * n])
    if float(c @ full) > bound + gap_points + _EPS:
        return None
    return full
