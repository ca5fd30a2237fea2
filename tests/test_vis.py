import numpy as np
import pytest

from lab import vis


def test_visualize_grid_shape_and_scaling():
    x = np.arange(5 * 4 * 3 * 3, dtype=float).reshape(5, 4, 3, 3)
    grid = vis.visualize_grid(x, ubound=255.0, padding=1)
    assert grid.shape == (3 * 4 + 2, 3 * 3 + 2, 3)
    # every tile is scaled to [0, 255] on its own
    np.testing.assert_allclose(grid[:4, :3].min(), 0.0)
    np.testing.assert_allclose(grid[:4, :3].max(), 255.0)


def test_image_grid_layouts():
    gray = np.random.default_rng(0).random((7, 5, 6))
    g = vis.image_grid(gray, ncols=4, padding=2)
    assert g.shape == (2 * 5 + 2, 4 * 6 + 3 * 2)
    rgb_nchw = np.random.default_rng(0).random((4, 3, 8, 8))
    g2 = vis.image_grid(rgb_nchw, padding=0, normalize="global")
    assert g2.shape == (16, 16, 3)
    # global normalisation keeps relative intensities: the first tile is the
    # first image, rescaled by the global extremes
    lo, hi = rgb_nchw.min(), rgb_nchw.max()
    np.testing.assert_allclose(g2[:8, :8], (rgb_nchw[0].transpose(1, 2, 0) - lo) / (hi - lo))
    const = np.ones((2, 4, 4))
    assert np.all(vis.image_grid(const, padding=0) == 0.5)


def test_image_grid_bad_input():
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        vis.image_grid(np.zeros((3, 4)))
    with pytest.raises(ValueError, match="no images"):
        vis.image_grid(np.zeros((0, 4, 4)))
    with pytest.raises(ValueError, match="normalize"):
        vis.image_grid(np.zeros((1, 4, 4)), normalize="bogus")
    with pytest.raises(ValueError, match="NaN"):
        vis.image_grid(np.full((1, 4, 4), np.nan))


def test_show_weights_and_curves():
    import matplotlib.pyplot as plt

    W = np.random.default_rng(0).standard_normal((256, 10))
    ax = vis.show_weights(W, (16, 16))
    img = ax.get_images()[0].get_array()
    assert img.shape == (3 * 16 + 2, 4 * 16 + 3)  # 10 images: 4 columns, 3 rows
    with pytest.raises(ValueError, match="256 rows"):
        vis.show_weights(W[:100], (16, 16))
    ax = vis.plot_curves({"a": [3, 2, 1], "b": ([0, 5], [1, 0])}, logy=True)
    assert [l.get_label() for l in ax.get_lines()] == ["a", "b"]
    with pytest.raises(TypeError, match="non-empty dict"):
        vis.plot_curves([1, 2])
    plt.close("all")


def test_visualize_grid_nchw_layout_matches_transposed_input():
    x = np.random.default_rng(1).random((6, 3, 7, 5))
    nhwc = x.transpose(0, 2, 3, 1)
    ref = vis.visualize_grid(nhwc)
    np.testing.assert_array_equal(vis.visualize_grid(x, layout="NCHW"), ref)
    np.testing.assert_array_equal(vis.visualize_grid(nhwc, layout="NHWC"), ref)
    assert ref.shape == (3 * 7 + 2, 3 * 5 + 2, 3)


@pytest.mark.parametrize("shape", [(32, 3, 7, 7), (10, 1, 28, 28), (4, 3, 32, 32), (2, 1, 5, 6)])
def test_visualize_grid_refuses_channels_first_input(shape):
    x = np.random.default_rng(0).random(shape)
    pattern = (rf"Xs has shape \({shape[0]}, {shape[1]}, {shape[2]}, {shape[3]}\), which looks "
               rf"like \(N, C, H, W\) with C={shape[1]} channels first; visualize_grid expects "
               r"\(N, H, W, C\): pass Xs.transpose\(0, 2, 3, 1\) or layout='NCHW'")
    with pytest.raises(ValueError, match=pattern):
        vis.visualize_grid(x)
    # stating the layout is always accepted
    assert vis.visualize_grid(x, layout="NCHW").shape[-1] == shape[1]
    assert vis.visualize_grid(x, layout="NHWC").shape[-1] == shape[3]


@pytest.mark.parametrize("shape", [(32, 7, 7, 3), (5, 4, 3, 3), (10, 28, 28, 1), (3, 3, 8, 3),
                                   (2, 1, 6, 1), (4, 2, 6, 6)])
def test_visualize_grid_keeps_channels_last_input(shape):
    x = np.random.default_rng(0).random(shape)
    np.testing.assert_array_equal(vis.visualize_grid(x), vis.visualize_grid(x, layout="NHWC"))


@pytest.mark.parametrize("kwargs, exc, pattern", [
    ({"layout": "CHW"}, ValueError, r"layout must be None, 'NHWC' or 'NCHW', got 'CHW'"),
    ({"layout": "nchw"}, ValueError, r"layout must be None, 'NHWC' or 'NCHW', got 'nchw'"),
    ({"padding": -1}, ValueError, "padding must be a non-negative integer, got -1"),
    ({"Xs": np.zeros((3, 4, 4))}, ValueError, r"Xs must have 4 dimensions, got shape \(3, 4, 4\)"),
])
def test_visualize_grid_bad_input(kwargs, exc, pattern):
    args = {"Xs": np.zeros((2, 4, 4, 3))}
    args.update(kwargs)
    with pytest.raises(exc, match=pattern):
        vis.visualize_grid(**args)
