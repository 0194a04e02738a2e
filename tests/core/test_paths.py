"""Path quadratures: weights sum to one, points lie in [0, 1], and each rule integrates what its order promises."""
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pellucid.core.paths import METHODS, path_points


def integrate(coeffs, n, method):
    a, w = path_points(n, method)
    return float((w * sum(c * a**k for k, c in enumerate(coeffs))).sum())


def exact(coeffs):
    return sum(c / (k + 1) for k, c in enumerate(coeffs))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n", [2, 3, 7, 50])
def test_shapes_weights_and_range(method, n):
    a, w = path_points(n, method)
    assert a.shape == w.shape == (n,)
    assert a.dtype == torch.float64
    assert math.isclose(float(w.sum()), 1.0, rel_tol=0, abs_tol=1e-12)
    assert bool((a >= 0).all() and (a <= 1).all())
    assert bool((w > 0).all())
    assert bool((a[1:] > a[:-1]).all())


@pytest.mark.parametrize("n", [1, 2, 5, 10])
def test_gausslegendre_exact_to_degree_2n_minus_1(n):
    rng = np.random.default_rng(n)
    coeffs = rng.normal(size=2 * n)  # degree 2n - 1
    assert integrate(coeffs, n, "gausslegendre") == pytest.approx(exact(coeffs), abs=1e-13)
    # and not exact one degree higher (so the check above is not vacuous)
    assert abs(integrate([0] * (2 * n) + [1.0], n, "gausslegendre") - 1 / (2 * n + 1)) > 1e-12


@pytest.mark.parametrize("n", [2, 4, 9])
def test_middle_and_trapezoid_exact_for_linear(n):
    coeffs = [0.3, -1.7]
    for method in ("riemann_middle", "riemann_trapezoid"):
        assert integrate(coeffs, n, method) == pytest.approx(exact(coeffs), abs=1e-12)


def test_left_right_exact_for_constants_and_order_one():
    assert integrate([2.5], 7, "riemann_left") == pytest.approx(2.5, abs=1e-12)
    assert integrate([2.5], 7, "riemann_right") == pytest.approx(2.5, abs=1e-12)
    # for f(a) = a: left sum = (n-1)/(2n), right sum = (n+1)/(2n): error exactly -+1/(2n)
    for n in (3, 10, 40):
        assert integrate([0, 1], n, "riemann_left") == pytest.approx(0.5 - 1 / (2 * n), abs=1e-12)
        assert integrate([0, 1], n, "riemann_right") == pytest.approx(0.5 + 1 / (2 * n), abs=1e-12)
    a, _ = path_points(4, "riemann_right")
    assert float(a[-1]) == 1.0
    a, _ = path_points(4, "riemann_left")
    assert float(a[0]) == 0.0


@pytest.mark.parametrize("method,order", [("riemann_left", 1), ("riemann_right", 1), ("riemann_middle", 2),
                                          ("riemann_trapezoid", 2)])
def test_convergence_order_on_smooth_function(method, order):
    f_exact = 1 - math.cos(1.0)  # integral of sin on [0, 1]

    def err(n):
        a, w = path_points(n, method)
        return abs(float((w * torch.sin(a)).sum()) - f_exact)

    ratio = err(20) / err(40)
    assert ratio == pytest.approx(2**order, rel=0.1)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 60), method=st.sampled_from(METHODS))
def test_property_weights_sum_to_one(n, method):
    if method == "riemann_trapezoid" and n < 2:
        with pytest.raises(ValueError, match="n_steps >= 2"):
            path_points(n, method)
        return
    a, w = path_points(n, method, dtype=torch.float32)
    assert a.dtype == w.dtype == torch.float32
    assert float(w.sum()) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "10"])
def test_bad_n_steps(bad):
    with pytest.raises(ValueError, match="n_steps"):
        path_points(bad, "gausslegendre")


def test_bad_method_names_the_argument():
    with pytest.raises(ValueError, match="method must be one of.*'simpson'"):
        path_points(5, "simpson")
