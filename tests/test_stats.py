import numpy as np
import pytest
from scipy import stats

from keras_cxr.evaluate.stats import holm, paired_t_p, sign_flip_p


def test_paired_t_matches_scipy_and_edge_cases():
    d = [0.02, 0.031, -0.004, 0.015, 0.027]
    assert paired_t_p(d) == pytest.approx(stats.ttest_1samp(d, 0.0).pvalue, rel=1e-12)
    assert paired_t_p([0.1]) is None and paired_t_p([0.0, 0.0]) == 1.0 and paired_t_p([0.2, 0.2]) == 0.0


def test_sign_flip_is_exact():
    # All five differences positive: only the all-plus and all-minus patterns reach |mean| -> 2/32.
    assert sign_flip_p([0.1, 0.2, 0.3, 0.4, 0.5]) == pytest.approx(2 / 32)
    # Sums of the 8 patterns of (1, 2, -1): 2, 4, -2, 0, 0, 2, -4, -2; |sum| >= 2 in 6 of them.
    assert sign_flip_p([1.0, 2.0, -1.0]) == pytest.approx(6 / 8)
    with pytest.raises(ValueError, match="n must be <= 20"):
        sign_flip_p(np.ones(21))


def test_holm_step_down():
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03, "d": None})
    # sorted 0.01, 0.03, 0.04 -> 3 x 0.01, max(0.03, 2 x 0.03), max(0.06, 1 x 0.04)
    assert adjusted["a"] == pytest.approx(0.03) and adjusted["c"] == pytest.approx(0.06)
    assert adjusted["b"] == pytest.approx(0.06) and adjusted["d"] is None
    assert holm({"x": 0.6, "y": 0.7}) == {"x": 1.0, "y": 1.0}
