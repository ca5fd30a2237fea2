import numpy as np
import pytest

from lab.fast_layers import im2col
from lab.layers import conv_forward_naive


@pytest.mark.parametrize("stride,pad", [(1, 0), (2, 1), (3, 1)])
def test_im2col_layout_and_convolution(stride, pad):
    rng = np.random.default_rng(stride + pad)
    x = rng.standard_normal((2, 3, 7, 7))
    w = rng.standard_normal((4, 3, 3, 3))
    cols = im2col(x, 3, 3, stride=stride, pad=pad)
    Ho = (7 + 2 * pad - 3) // stride + 1
    assert cols.shape == (27, 2 * Ho * Ho)
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    n, i, j, c, k, l = 1, Ho - 1, 0, 2, 1, 2
    assert cols[(c * 3 + k) * 3 + l, (n * Ho + i) * Ho + j] == xp[n, c, i * stride + k, j * stride + l]
    out = (w.reshape(4, -1) @ cols).reshape(4, 2, Ho, Ho).transpose(1, 0, 2, 3)
    ref, _ = conv_forward_naive(x, w, np.zeros(4), {"stride": stride, "pad": pad})
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)


def test_im2col_bad_geometry():
    with pytest.raises(ValueError, match="not a whole number"):
        im2col(np.zeros((1, 1, 4, 4)), 3, 3, stride=2)
    with pytest.raises(ValueError, match="positive integer"):
        im2col(np.zeros((1, 1, 4, 4)), 0, 3)
