"""ThetaLayout: lme4's order of theta, its bounds and start, and theta <-> T."""

from __future__ import annotations

import numpy as np

from mixedfx.engine.layout import ThetaLayout


def test_lme4_order_column_major_lower_triangle():
    lay = ThetaLayout((3, 1, 2), ((3,), (1,), (1, 1)))
    assert lay.ntheta == 6 + 1 + 2
    rows, cols = lay.index[0]
    assert list(zip(rows, cols, strict=True)) == [(0, 0), (1, 0), (2, 0), (1, 1), (2, 1), (2, 2)]
    assert [(s.start, s.stop) for s in lay.slices] == [(0, 6), (6, 7), (7, 9)]
    np.testing.assert_array_equal(lay.start(), [1, 0, 0, 1, 0, 1, 1, 1, 1])
    np.testing.assert_array_equal(lay.lower() == 0.0, lay.start() == 1.0)
    assert np.isneginf(lay.lower()[1])


def test_theta_round_trips_through_the_factors():
    lay = ThetaLayout((2, 2), ((2,), (1, 1)))
    theta = np.array([1.5, -0.25, 0.75, 2.0, 0.5])
    Ts = lay.Ts(theta)
    np.testing.assert_array_equal(Ts[0], [[1.5, 0.0], [-0.25, 0.75]])
    np.testing.assert_array_equal(Ts[1], [[2.0, 0.0], [0.0, 0.5]])
    np.testing.assert_array_equal(lay.theta(Ts), theta)


def test_by_row_spreads_row_values_over_theta():
    lay = ThetaLayout((2, 1), ((2,), (1,)))
    out = lay.by_row([np.array([10.0, 20.0]), np.array([30.0])])
    np.testing.assert_array_equal(out, [10.0, 20.0, 20.0, 30.0])  # (0,0), (1,0), (1,1), (0,0)


def test_block_diagonal_term_is_lme4s_separate_terms():
    """(f || g) with a 3-level factor: lme4's (1 | g) + (0 + f | g), blocks of 1 and 3."""
    lay = ThetaLayout((4,), ((1, 3),))
    rows, cols = lay.index[0]
    assert list(zip(rows, cols, strict=True)) == [
        (0, 0),
        (1, 1),
        (2, 1),
        (3, 1),
        (2, 2),
        (3, 2),
        (3, 3),
    ]
    T = lay.T(0, np.arange(1.0, 8.0))
    assert T[1:, 0].tolist() == [0.0, 0.0, 0.0]  # no correlation between the blocks
    np.testing.assert_array_equal(lay.start(), [1, 1, 0, 0, 1, 0, 1])


def test_block_positions_place_theta_in_each_block_of_two_or_more() -> None:
    layout = ThetaLayout((3, 2, 1, 2), ((3,), (1, 1), (1,), (2,)))
    P = layout.block_positions()
    assert len(P) == 2  # the 1 x 1 blocks have no ridge
    theta = np.arange(1.0, 13.0)
    T = layout.Ts(theta)
    for block, (t, start) in zip(P, [(0, 0), (3, 0)], strict=True):
        b = len(block)
        inside = block >= 0
        assert (inside == np.tri(b, dtype=bool)).all()
        assert np.array_equal(
            theta[block[inside]], T[t][start : start + b, start : start + b][inside]
        )
