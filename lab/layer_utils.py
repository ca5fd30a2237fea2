"""Sandwich layers: common sequences of layers as one forward/backward pair.

Each ``*_forward`` returns ``(out, cache)`` where ``cache`` bundles the caches
of its parts; each ``*_backward(dout, cache)`` applies the parts' backward
passes in reverse order (the chain rule) and returns the gradients with
respect to the inputs, in the order they were given. The convolutions and
poolings use the vectorised :mod:`lab.fast_layers`.
"""
from __future__ import annotations

from .fast_layers import (conv_backward_fast, conv_forward_fast, max_pool_backward_fast,
                          max_pool_forward_fast)
from .layers import (affine_backward, affine_forward, batchnorm_backward_alt, batchnorm_forward,
                     relu_backward, relu_forward, spatial_batchnorm_backward,
                     spatial_batchnorm_forward)

__all__ = ["affine_relu_forward", "affine_relu_backward",
           "affine_bn_relu_forward", "affine_bn_relu_backward",
           "conv_relu_forward", "conv_relu_backward",
           "conv_bn_relu_forward", "conv_bn_relu_backward",
           "conv_relu_pool_forward", "conv_relu_pool_backward"]


def affine_relu_forward(x, w, b):
    """Affine layer followed by ReLU: ``out = max(0, x_flat @ w + b)``.

    Parameters
    ----------
    x : ndarray, shape (N, d_1, ..., d_k)
    w : ndarray, shape (D, M), D = d_1 * ... * d_k
    b : ndarray, shape (M,)

    Returns
    -------
    out : ndarray, shape (N, M)
    cache : tuple for :func:`affine_relu_backward`
    """
    a, fc_cache = affine_forward(x, w, b)
    out, relu_cache = relu_forward(a)
    return out, (fc_cache, relu_cache)


def affine_relu_backward(dout, cache):
    """Backward pass of :func:`affine_relu_forward`.

    Returns
    -------
    dx : ndarray, shape (N, d_1, ..., d_k)
    dw : ndarray, shape (D, M)
    db : ndarray, shape (M,)
    """
    fc_cache, relu_cache = cache
    return affine_backward(relu_backward(dout, relu_cache), fc_cache)


def affine_bn_relu_forward(x, w, b, gamma, beta, bn_param):
    """Affine, batch normalisation, ReLU.

    Parameters
    ----------
    x : ndarray, shape (N, d_1, ..., d_k)
    w : ndarray, shape (D, M)
    b : ndarray, shape (M,)
    gamma, beta : ndarray, shape (M,)
    bn_param : dict, as for :func:`lab.layers.batchnorm_forward` (updated in
        place)

    Returns
    -------
    out : ndarray, shape (N, M)
    cache : tuple for :func:`affine_bn_relu_backward`
    """
    a, fc_cache = affine_forward(x, w, b)
    an, bn_cache = batchnorm_forward(a, gamma, beta, bn_param)
    out, relu_cache = relu_forward(an)
    return out, (fc_cache, bn_cache, relu_cache)


def affine_bn_relu_backward(dout, cache):
    """Backward pass of :func:`affine_bn_relu_forward`.

    Returns
    -------
    dx : ndarray, shape (N, d_1, ..., d_k)
    dw : ndarray, shape (D, M)
    db, dgamma, dbeta : ndarray, shape (M,)
    """
    fc_cache, bn_cache, relu_cache = cache
    dan = relu_backward(dout, relu_cache)
    da, dgamma, dbeta = batchnorm_backward_alt(dan, bn_cache)
    dx, dw, db = affine_backward(da, fc_cache)
    return dx, dw, db, dgamma, dbeta


def conv_relu_forward(x, w, b, conv_param):
    """Convolution followed by ReLU.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    w : ndarray, shape (F, C, HH, WW)
    b : ndarray, shape (F,)
    conv_param : dict with ``'stride'`` and ``'pad'``

    Returns
    -------
    out : ndarray, shape (N, F, H', W')
    cache : tuple for :func:`conv_relu_backward`
    """
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    out, relu_cache = relu_forward(a)
    return out, (conv_cache, relu_cache)


def conv_relu_backward(dout, cache, *, need_dx=True):
    """Backward pass of :func:`conv_relu_forward`; ``need_dx=False`` skips dx
    (see :func:`lab.fast_layers.conv_backward_fast`).

    Returns
    -------
    dx : ndarray, shape (N, C, H, W), or None if not ``need_dx``
    dw : ndarray, shape (F, C, HH, WW)
    db : ndarray, shape (F,)
    """
    conv_cache, relu_cache = cache
    return conv_backward_fast(relu_backward(dout, relu_cache), conv_cache, need_dx=need_dx)


def conv_bn_relu_forward(x, w, b, gamma, beta, conv_param, bn_param):
    """Convolution, spatial batch normalisation, ReLU.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    w : ndarray, shape (F, C, HH, WW)
    b : ndarray, shape (F,)
    gamma, beta : ndarray, shape (F,)
    conv_param : dict with ``'stride'`` and ``'pad'``
    bn_param : dict, as for :func:`lab.layers.spatial_batchnorm_forward`

    Returns
    -------
    out : ndarray, shape (N, F, H', W')
    cache : tuple for :func:`conv_bn_relu_backward`
    """
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    an, bn_cache = spatial_batchnorm_forward(a, gamma, beta, bn_param)
    out, relu_cache = relu_forward(an)
    return out, (conv_cache, bn_cache, relu_cache)


def conv_bn_relu_backward(dout, cache):
    """Backward pass of :func:`conv_bn_relu_forward`.

    Returns
    -------
    dx : ndarray, shape (N, C, H, W)
    dw : ndarray, shape (F, C, HH, WW)
    db, dgamma, dbeta : ndarray, shape (F,)
    """
    conv_cache, bn_cache, relu_cache = cache
    dan = relu_backward(dout, relu_cache)
    da, dgamma, dbeta = spatial_batchnorm_backward(dan, bn_cache)
    dx, dw, db = conv_backward_fast(da, conv_cache)
    return dx, dw, db, dgamma, dbeta


def conv_relu_pool_forward(x, w, b, conv_param, pool_param):
    """Convolution, ReLU, max pooling.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    w : ndarray, shape (F, C, HH, WW)
    b : ndarray, shape (F,)
    conv_param : dict with ``'stride'`` and ``'pad'``
    pool_param : dict with ``'pool_height'``, ``'pool_width'`` and ``'stride'``

    Returns
    -------
    out : ndarray, shape (N, F, H'', W'') (the pooled size)
    cache : tuple for :func:`conv_relu_pool_backward`
    """
    a, conv_cache = conv_forward_fast(x, w, b, conv_param)
    s, relu_cache = relu_forward(a)
    out, pool_cache = max_pool_forward_fast(s, pool_param)
    return out, (conv_cache, relu_cache, pool_cache)


def conv_relu_pool_backward(dout, cache, *, need_dx=True):
    """Backward pass of :func:`conv_relu_pool_forward`; ``need_dx=False``
    skips dx (see :func:`lab.fast_layers.conv_backward_fast`).

    Returns
    -------
    dx : ndarray, shape (N, C, H, W), or None if not ``need_dx``
    dw : ndarray, shape (F, C, HH, WW)
    db : ndarray, shape (F,)
    """
    conv_cache, relu_cache, pool_cache = cache
    ds = max_pool_backward_fast(dout, pool_cache)
    da = relu_backward(ds, relu_cache)
    return conv_backward_fast(da, conv_cache, need_dx=need_dx)
