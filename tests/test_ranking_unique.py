"""The cells' unique columns (calls.ranking.unique_columns) are numpy's, faster."""

from __future__ import annotations

import numpy as np
import pytest

from keyservices.calls.ranking import unique_columns


@pytest.mark.parametrize("n", [1, 7, 5000])
@pytest.mark.parametrize("sizes", [(3,), (300, 40, 4, 4, 16), (2**40, 2**30)])
def test_the_same_columns_and_inverse_as_numpys_unique(n: int, sizes: tuple[int, ...]) -> None:
    rng = np.random.default_rng(n)
    parts = [rng.integers(0, k, n, dtype=np.int64) for k in sizes]
    got, at = unique_columns(parts)
    want, inverse = np.unique(np.stack(parts), axis=1, return_inverse=True)
    assert got.shape == want.shape and (got == want).all()
    assert (at == inverse.reshape(-1)).all()
    assert (got[:, at] == np.stack(parts)).all()  # every row's columns found again
