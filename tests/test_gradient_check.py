import numpy as np
import pytest

from lab.gradient_check import (eval_numerical_gradient, eval_numerical_gradient_array,
                                grad_check_sparse, norm_rel_error, rel_error)


def simple_quadratic(x):
    """h(x) = x1^2 + 3 x1 x2 and its gradient (the course's check)."""
    return x[0] ** 2 + 3 * x[0] * x[1], np.array([2 * x[0] + 3 * x[1], 3 * x[0]])


def test_course_check_value():
    x = np.array([4.0, 10.0])
    value, grad = simple_quadratic(x)
    num = eval_numerical_gradient(lambda z: simple_quadratic(z)[0], x, h=1e-4)
    assert x.tolist() == [4.0, 10.0]  # restored after perturbation
    np.testing.assert_allclose(num, [38.0, 12.0], rtol=1e-10)
    diff = norm_rel_error(num, grad)
    # The course's reference run prints 2.1452e-12 for this function and step.
    assert diff == pytest.approx(2.1452e-12, rel=1e-3)


def test_numerical_gradient_matches_analytic_for_random_function():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((4, 5))
    x = rng.standard_normal((5, 3))
    f = lambda z: float(np.sum(np.tanh(A @ z)))
    grad = A.T @ (1 - np.tanh(A @ x) ** 2)
    assert rel_error(eval_numerical_gradient(f, x), grad) < 1e-8


def test_numerical_gradient_array_is_vjp():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4))
    W = rng.standard_normal((4, 2))
    df = rng.standard_normal((3, 2))
    num = eval_numerical_gradient_array(lambda z: z @ W, x, df)
    assert rel_error(num, df @ W.T) < 1e-9


def test_rel_error_values():
    assert rel_error(np.array([1.0, 2.0]), np.array([1.0, 2.0])) == 0.0
    assert rel_error(np.array([1.0]), np.array([3.0])) == pytest.approx(0.5)
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0
    with pytest.raises(ValueError, match="one shape"):
        rel_error(np.zeros(3), np.zeros(4))


def test_grad_check_sparse():
    x = np.linspace(-1, 1, 12).reshape(3, 4)
    errors = grad_check_sparse(lambda z: float(np.sum(z ** 3)), x, 3 * x ** 2, num_checks=5)
    assert len(errors) == 5 and max(errors) < 1e-8


def test_bad_inputs():
    with pytest.raises(TypeError, match="floating-point ndarray"):
        eval_numerical_gradient(lambda z: 0.0, np.array([1, 2]))
    with pytest.raises(TypeError, match="floating-point ndarray"):
        eval_numerical_gradient(lambda z: 0.0, [1.0, 2.0])
    with pytest.raises(ValueError, match="step size"):
        eval_numerical_gradient(lambda z: 0.0, np.zeros(2), h=0.0)
    with pytest.raises(ValueError, match="df has shape"):
        eval_numerical_gradient_array(lambda z: z, np.zeros(2), np.zeros(3))


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("a,b,expected", [
    ([1.0, NAN], [1.0, 2.0], INF),          # a NaN gradient is not "close"
    ([1.0, 2.0], [NAN, 2.0], INF),
    ([NAN], [NAN], INF),                    # NaN never matches, not even NaN
    ([INF, 1.0], [INF, 1.0], 0.0),          # the same infinity matches
    ([INF], [-INF], INF),
    ([INF, 0.5], [1.0, 0.5], INF),
    ([1e308, -1e308], [-1e308, 1e308], 1.0),  # x - y overflows; the ratio does not
])
def test_rel_error_non_finite(a, b, expected):
    assert rel_error(np.array(a), np.array(b)) == expected
    assert rel_error(np.array(b), np.array(a)) == expected
    if expected == INF:
        assert not rel_error(np.array(a), np.array(b)) < 1e-7      # the usual check fails


@pytest.mark.parametrize("a,b,expected", [
    ([1.0, NAN], [1.0, 2.0], INF),
    ([NAN, NAN], [NAN, NAN], INF),
    ([INF, 1.0], [INF, 1.0], 0.0),
    ([INF, 1.0], [INF, 3.0], 0.5),          # the finite entries decide
    ([INF, 1.0], [-INF, 1.0], INF),
    ([1e200, 1e200], [1e200, -1e200], 1.0),  # the norms overflow; their ratio does not
])
def test_norm_rel_error_non_finite(a, b, expected):
    assert norm_rel_error(np.array(a), np.array(b)) == pytest.approx(expected)
    assert norm_rel_error(np.array(b), np.array(a)) == pytest.approx(expected)


def test_grad_check_sparse_non_finite_analytic_gradient():
    x = np.linspace(-1, 1, 6)
    grad = np.full(6, np.nan)
    errors = grad_check_sparse(lambda z: float(np.sum(z ** 2)), x, grad, num_checks=4)
    assert errors == [INF] * 4
    assert max(errors) > 1e-7


class Boom(Exception):
    pass


def failing_after(calls):
    """A function of x that raises on its ``calls``-th call."""
    count = [0]

    def f(z):
        count[0] += 1
        if count[0] == calls:
            raise Boom
        return np.sum(z ** 2) * np.ones(1) if f.array else float(np.sum(z ** 2))
    f.array = False
    return f


@pytest.mark.parametrize("calls", [1, 2, 5])
@pytest.mark.parametrize("which", ["scalar", "array", "sparse"])
def test_x_restored_when_f_raises(which, calls):
    x = np.linspace(-1, 1, 6).reshape(2, 3)
    original = x.copy()
    f = failing_after(calls)
    with pytest.raises(Boom):
        if which == "scalar":
            eval_numerical_gradient(f, x)
        elif which == "array":
            f.array = True
            eval_numerical_gradient_array(f, x, np.ones(1))
        else:
            grad_check_sparse(f, x, 2 * x, num_checks=5)
    assert np.array_equal(x, original)


def test_float32_with_a_step_it_can_hold():
    x = np.array([0.5, -1.0, 2.0], dtype=np.float32)
    num = eval_numerical_gradient(lambda z: float(np.sum(z.astype(np.float64) ** 3)), x, h=1e-2)
    np.testing.assert_allclose(num, 3 * x.astype(np.float64) ** 2, rtol=1e-3)
