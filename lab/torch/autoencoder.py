"""The sparse autoencoder in PyTorch, differentiated by autograd.

The same network and cost as :mod:`lab.autoencoder`: hidden
``a = sigmoid(x W1 + b1)``, output ``o = sigmoid(a W2 + b2)``, and

    J = 1/(2N) sum_m ||x(m) - o(m)||^2 + lambda/2 (|W1|^2 + |W2|^2)
        + beta sum_b KL(rho || rho_hat_b).

The layers are ``nn.Linear`` modules, which store their weight as
``(out_features, in_features)``; :meth:`SparseAutoencoder.to_numpy` and
:meth:`SparseAutoencoder.from_numpy` convert to and from the NumPy convention
``We = (W1, W2, b1, b2)`` with ``W1`` of shape ``(L_in, L_hid)`` and ``W2`` of
shape ``(L_hid, L_out)``, so weights move freely between the backends.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from lab import autoencoder as _np_ae
from lab import data as _np_data
from lab._validate import finite_float, nonneg_int, positive_int
from lab.progress import progress

__all__ = ["SparseAutoencoder", "set_weights", "get_weights", "cost_and_grad", "train_gd",
           "train_adam"]

_DTYPES = {"float32": torch.float32, "float64": torch.float64}


def _torch_dtype(dtype):
    if isinstance(dtype, torch.dtype):
        if dtype not in (torch.float32, torch.float64):
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        return dtype
    name = np.dtype(dtype).name
    if name not in _DTYPES:
        raise TypeError(f"dtype must be float32 or float64, got {dtype!r}")
    return _DTYPES[name]


class _hybridmethod:
    """Method that receives the class when called on the class and the
    instance when called on an instance (used by ``from_numpy``)."""

    def __init__(self, fclass, finstance):
        self.fclass = fclass
        self.finstance = finstance
        self.__doc__ = finstance.__doc__

    def __get__(self, obj, cls):
        if obj is None:
            return self.fclass.__get__(cls, type(cls))
        return self.finstance.__get__(obj, cls)


class SparseAutoencoder(nn.Module):
    """Sparse autoencoder: one sigmoid hidden layer, sigmoid outputs.

    Parameters
    ----------
    L_in, L_hid : int
        Input and hidden sizes.
    lam : float
        Weight decay ``lambda >= 0`` (on the weight matrices, not the biases).
    beta : float
        Sparsity weight ``>= 0``.
    rho : float
        Target mean hidden activation, in ``(0, 1)``.
    L_out : int, optional
        Output size, defaults to ``L_in``.
    dtype : torch.float32 / torch.float64 (or their NumPy names)
    seed : int >= 0 or None, default 0
        Initial weights are ``lab.autoencoder.init_weights(L_in, L_hid, L_out, seed)``,
        the same numbers the NumPy and Keras versions start from. seed=0 by
        default: the same weights on every call; pass seed=None for fresh
        randomness (neither ``np.random.seed`` nor ``torch.manual_seed`` has
        an effect either way).

    Attributes
    ----------
    encoder : nn.Linear(L_in, L_hid)
    decoder : nn.Linear(L_hid, L_out)
    """

    def __init__(self, L_in, L_hid, lam, beta, rho, L_out=None, dtype=torch.float64, seed=0):
        super().__init__()
        p = _np_ae._check_params((L_in, L_hid, lam, beta, rho))
        L_out = p.L_in if L_out is None else positive_int(L_out, "L_out")
        self.L_in, self.L_hid, self.L_out = p.L_in, p.L_hid, L_out
        self.lam, self.beta, self.rho = p.lam, p.beta, p.rho
        dt = _torch_dtype(dtype)
        self.encoder = nn.Linear(p.L_in, p.L_hid, dtype=dt)
        self.decoder = nn.Linear(p.L_hid, L_out, dtype=dt)
        np_dt = np.float64 if dt == torch.float64 else np.float32
        self.load_numpy(_np_ae.init_weights(p.L_in, p.L_hid, L_out, seed=seed, dtype=np_dt))

    @property
    def dtype(self):
        """The parameters' dtype."""
        return self.encoder.weight.dtype

    # -- weights in the NumPy convention ------------------------------------ #

    def load_numpy(self, We):
        """Copy NumPy weights ``We = (W1, W2, b1, b2)`` into the model; return ``self``.

        ``W1`` (L_in, L_hid), ``W2`` (L_hid, L_out), ``b1`` (L_hid,), ``b2`` (L_out,);
        they are converted to the model's dtype.
        """
        W1, W2, b1, b2 = _np_ae._check_we(We, self.L_in, self.L_hid, self.L_out)
        with torch.no_grad():
            for param, value in ((self.encoder.weight, W1.T), (self.decoder.weight, W2.T),
                                 (self.encoder.bias, b1), (self.decoder.bias, b2)):
                param.copy_(torch.as_tensor(np.ascontiguousarray(value), dtype=param.dtype))
        return self

    def _from_numpy_cls(cls, We, lam, beta, rho, dtype=None):
        W1, W2, b1, b2 = _np_ae._check_we(We)
        if dtype is None:
            dtype = _np_ae._common_dtype(W1, W2, b1, b2)
        model = cls(W1.shape[0], W1.shape[1], lam, beta, rho, L_out=W2.shape[1], dtype=dtype)
        return model.load_numpy((W1, W2, b1, b2))

    def _from_numpy_inst(self, We):
        """Build or load a model from NumPy weights ``We = (W1, W2, b1, b2)``.

        * ``SparseAutoencoder.from_numpy(We, lam, beta, rho, dtype=None)`` builds a
          new model whose sizes come from ``We`` (``W1`` (L_in, L_hid),
          ``W2`` (L_hid, L_out)); ``dtype`` defaults to ``We``'s.
        * ``model.from_numpy(We)`` copies ``We`` into an existing model and
          returns it (same as :meth:`load_numpy`).
        """
        return self.load_numpy(We)

    from_numpy = _hybridmethod(_from_numpy_cls, _from_numpy_inst)

    def to_numpy(self):
        """The weights as NumPy arrays ``(W1, W2, b1, b2)``: ``W1`` (L_in, L_hid),
        ``W2`` (L_hid, L_out), ``b1`` (L_hid,), ``b2`` (L_out,)."""
        with torch.no_grad():
            return (self.encoder.weight.detach().T.numpy().copy(),
                    self.decoder.weight.detach().T.numpy().copy(),
                    self.encoder.bias.detach().numpy().copy(),
                    self.decoder.bias.detach().numpy().copy())

    # -- network and cost --------------------------------------------------- #

    def as_input(self, data, check_finite=True):
        """Check ``data`` (ndarray or tensor, shape (N, L_in), finite unless
        ``check_finite`` is False) and return it as a tensor of the model's dtype."""
        if isinstance(data, torch.Tensor):
            if not data.dtype.is_floating_point:
                raise TypeError(f"data must hold floating-point numbers, got dtype {data.dtype}")
            x = data.detach().to(self.dtype)
            shape = tuple(x.shape)
            if x.ndim != 2 or shape[1] != self.L_in or shape[0] == 0:
                raise ValueError(f"data must have shape (N, {self.L_in}) with N >= 1, got {shape}")
            if check_finite and not bool(torch.isfinite(x).all()):
                raise ValueError("data contains NaN or inf")
            return x
        x = _np_ae._check_data(data, self.L_in, check_finite=check_finite)
        return torch.from_numpy(np.ascontiguousarray(x)).to(self.dtype)

    def _checked_input(self, data):
        """``as_input`` plus the check that ``data`` lies in [0, 1]: one min and
        one max, which also catch NaN and inf."""
        x = self.as_input(data, check_finite=False)
        _np_ae._check_unit_range(x.min(), x.max())
        return x

    def forward(self, x):
        """Hidden activations (N, L_hid) and outputs (N, L_out) for inputs x (N, L_in)."""
        hidden = torch.sigmoid(self.encoder(x))
        return hidden, torch.sigmoid(self.decoder(hidden))

    def cost(self, data):
        """The sparse autoencoder cost ``J`` as a 0-d tensor (call ``.backward()``).

        Parameters
        ----------
        data : ndarray or tensor, shape (N, L_in), values in [0, 1]
            Inputs, which are also the targets.

        ``data`` costs one min and one max per call, which show whether it
        lies in [0, 1] and is finite. NaN or inf in the weights makes ``J``
        non-finite, which is checked after the computation: a ValueError then
        names the culprit.
        """
        return self._cost(self._checked_input(data))

    def _cost(self, x):
        """:meth:`cost` on a tensor ``x`` that :meth:`_checked_input` returned."""
        n = x.shape[0]
        hidden, out = self(x)
        J = 0.5 * (out - x).square().sum() / n
        if self.lam:
            J = J + 0.5 * self.lam * (self.encoder.weight.square().sum()
                                      + self.decoder.weight.square().sum())
        if self.beta:
            eps = torch.finfo(self.dtype).eps
            rho_hat = hidden.mean(dim=0).clamp(eps, 1.0 - eps)
            rho = self.rho
            kl = rho * torch.log(rho / rho_hat) + (1.0 - rho) * torch.log((1.0 - rho) / (1.0 - rho_hat))
            J = J + self.beta * kl.sum()
        if not bool(torch.isfinite(J)):
            self._diagnose_nonfinite(J, x)
        return J

    def _diagnose_nonfinite(self, J, x):
        """Raise a ValueError naming why ``J`` came out NaN or inf."""
        if not bool(torch.isfinite(x).all()):
            raise ValueError("data contains NaN or inf")
        for name, param in self.named_parameters():
            if not bool(torch.isfinite(param).all()):
                raise ValueError(f"parameter {name} contains NaN or inf")
        raise ValueError(f"the cost overflowed to {float(J)} with finite inputs; the weights "
                         "or data are far too large for this dtype")


def set_weights(model, We):
    """Copy NumPy weights ``We = (W1, W2, b1, b2)`` into ``model``; return it."""
    return model.load_numpy(We)


def get_weights(model):
    """``model``'s weights as NumPy ``(W1, W2, b1, b2)``, ``W1`` (L_in, L_hid), ..."""
    return model.to_numpy()


def _check_model(model):
    if not isinstance(model, SparseAutoencoder):
        raise TypeError(f"model must be a SparseAutoencoder, got {type(model).__name__}")


def _grads_numpy(model):
    return (model.encoder.weight.grad.T.numpy().copy(), model.decoder.weight.grad.T.numpy().copy(),
            model.encoder.bias.grad.numpy().copy(), model.decoder.bias.grad.numpy().copy())


def cost_and_grad(model, data):
    """``J`` and its gradient by autograd, in the NumPy convention.

    Parameters
    ----------
    model : SparseAutoencoder
    data : ndarray or tensor, shape (N, L_in)

    Returns
    -------
    J : float
    dWe : tuple of ndarrays (dW1 (L_in, L_hid), dW2 (L_hid, L_out), db1 (L_hid,), db2 (L_out,))
    """
    _check_model(model)
    model.zero_grad(set_to_none=True)
    J = model.cost(data)
    J.backward()
    return float(J.detach()), _grads_numpy(model)


def train_gd(model, data, lr, num_iters, verbose=False, print_every=100):
    """Full-batch gradient descent ``w <- w - lr * dJ/dw`` on ``model`` (in place).

    Parameters
    ----------
    model : SparseAutoencoder
    data : ndarray or tensor, shape (N, L_in), values in [0, 1]
        Checked once (range and finiteness), not at every step.
    lr : float
        Step size, > 0.
    num_iters : int

    Returns
    -------
    history : ndarray, shape (num_iters,)
        ``J`` at the start of each step.
    """
    _check_model(model)
    lr = finite_float(lr, "lr", low=0.0, low_open=True)
    num_iters = nonneg_int(num_iters, "num_iters")
    print_every = positive_int(print_every, "print_every")
    x = model._checked_input(data)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    history = np.empty(num_iters)
    bar = progress(total=num_iters, desc="train_gd (PyTorch)", enabled=bool(verbose))
    for i in range(num_iters):
        opt.zero_grad(set_to_none=True)
        J = model._cost(x)
        J.backward()
        opt.step()
        history[i] = float(J.detach())
        bar.update(**({"J": history[i]} if i % print_every == 0 or i == num_iters - 1 else {}))
    bar.close()
    return history


def train_adam(model, data, lr=1e-2, num_iters=500, batch_size=None, betas=(0.9, 0.999),
               eps=1e-8, seed=0, verbose=False, print_every=100):
    """Adam (``torch.optim.Adam``) on full batches or shuffled minibatches.

    Minibatches come from :func:`lab.data.minibatch_indices` (one shuffled
    pass per epoch, seeded by ``seed``), as in :func:`lab.autoencoder.train_adam`,
    so both runs see the same batches.

    Parameters
    ----------
    model : SparseAutoencoder
    data : ndarray or tensor, shape (N, L_in), values in [0, 1]
        Checked once (range and finiteness), not at every step.
    lr : float
    num_iters : int
    batch_size : int, optional
        ``None`` for full batches.
    betas, eps : Adam's decay rates and denominator offset.
    seed : int >= 0 or None, default 0
        Seed of the minibatch shuffling: seed=0 by default, the same
        minibatches on every call; pass seed=None for fresh randomness.

    Returns
    -------
    history : ndarray, shape (num_iters,)
        Loss of each update's batch, before the update.
    """
    _check_model(model)
    lr = finite_float(lr, "lr", low=0.0, low_open=True)
    num_iters = nonneg_int(num_iters, "num_iters")
    seed = None if seed is None else nonneg_int(seed, "seed")
    print_every = positive_int(print_every, "print_every")
    x = model._checked_input(data)
    N = x.shape[0]
    if batch_size is not None:
        batch_size = positive_int(batch_size, "batch_size")
        if batch_size > N:
            raise ValueError(f"batch_size must be at most N={N}, got {batch_size}")
        if batch_size == N:
            batch_size = None
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=tuple(betas), eps=eps)
    batches = None if batch_size is None else _np_data.minibatch_indices(N, batch_size, seed)
    history = np.empty(num_iters)
    bar = progress(total=num_iters, desc="train_adam (PyTorch)", enabled=bool(verbose))
    for i in range(num_iters):
        xb = x if batches is None else x[torch.from_numpy(next(batches))]
        opt.zero_grad(set_to_none=True)
        J = model._cost(xb)
        J.backward()
        opt.step()
        history[i] = float(J.detach())
        bar.update(**({"J": history[i]} if i % print_every == 0 or i == num_iters - 1 else {}))
    bar.close()
    return history
