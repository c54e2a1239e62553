import math

import numpy as np
import pytest

from pipeline.train.ablations import fit_coverage_threshold


def _object():
    cov = np.array([[0.3, 0.1], [0.1, 0.3], [0.3, 0.0], [0.0, 0.0]])
    counts = np.array([[0, 10, 0], [0, 0, 10], [0, 10, 0], [10, 0, 0]])  # GT: part 0, part 1, part 0, none
    return cov, np.ones(4, bool), counts


def test_fitted_threshold_is_the_best_one_closest_to_half():
    cov, valid, counts = _object()
    t, miou = fit_coverage_threshold([cov, cov], [valid, valid], [counts, counts], [False, False])
    # 0.05 .. 0.3 all label perfectly; 0.35+ label nothing: the tie goes to 0.3 (closest to 0.5)
    assert t == 0.3 and miou == 1.0


def test_fixed_half_threshold_labels_nothing_here():
    cov, valid, counts = _object()
    t, miou = fit_coverage_threshold([cov], [valid], [counts], [False, False], grid=[0.5])
    assert t == 0.5 and miou == 0.0


def test_no_labelled_object_falls_back_to_half():
    t, miou = fit_coverage_threshold([], [], [], [False])
    assert t == 0.5 and math.isnan(miou)


def test_empty_threshold_grid_is_a_value_error():
    """An empty grid used to crash with TypeError ('NoneType' is not subscriptable)."""
    cov, valid, counts = _object()
    with pytest.raises(ValueError, match="non-empty threshold grid"):
        fit_coverage_threshold([cov], [valid], [counts], [False, False], grid=[])
