"""The shared input checks of lab._validate."""
import warnings

import numpy as np
import pytest

from lab._validate import as_float_array


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nonfinite_entries_are_rejected(bad, dtype):
    x = np.ones((3, 4), dtype=dtype)
    x[2, 1] = bad
    with pytest.raises(ValueError, match="x contains NaN or inf"):
        as_float_array(x, "x")
    with pytest.raises(ValueError, match="x contains NaN or inf"):
        as_float_array(x[:, ::-1].T, "x")            # any memory layout


def test_inf_and_minus_inf_together_are_rejected():
    x = np.array([1.0, np.inf, -np.inf])               # sums to NaN, not inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match="contains NaN or inf"):
            as_float_array(x, "x")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_finite_values_whose_sum_overflows_are_accepted(dtype):
    big = np.finfo(dtype).max / 2
    x = np.full(10, big, dtype=dtype)
    with np.errstate(over="ignore"):
        assert not np.isfinite(np.sum(x))              # the fast check alone would refuse it
    with warnings.catch_warnings():
        warnings.simplefilter("error")                 # and quietly: no overflow warning
        assert as_float_array(x, "x") is x


def test_integers_become_float64_and_other_kinds_are_refused():
    assert as_float_array(np.arange(3), "x").dtype == np.float64
    with pytest.raises(TypeError, match="x must hold real floating-point numbers"):
        as_float_array(np.array([1 + 2j]), "x")
    with pytest.raises(TypeError, match="got dtype bool"):
        as_float_array(np.array([True]), "x")
