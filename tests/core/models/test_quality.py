import numpy as np
from hypothesis import given, settings, strategies as st

from riskstream.core.models.quality import _ranks, auc


def _ranks_pairwise(s):
    """The reference: a value's rank is 1 + how many are smaller + half of the others equal to it."""
    return np.array([1 + sum(x < v for x in s) + (sum(x == v for x in s) - 1) / 2 for v in s], float)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([0.0, 0.1, 0.25, 0.5, 0.9, 1.0]) | st.floats(0, 1), max_size=40))
def test_ranks_average_ties(values):
    s = np.array(values, float)
    assert _ranks(s).tolist() == _ranks_pairwise(values).tolist()


def test_auc_ties_count_half():
    assert auc([0.5, 0.5], [0, 1]) == 0.5
    assert auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
