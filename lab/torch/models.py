"""The course's two networks as PyTorch modules, two ways each.

* subclassed ``nn.Module``: :class:`TwoLayerFC`, :class:`ThreeLayerConvNet`;
* ``nn.Sequential``: :func:`two_layer_fc_sequential`,
  :func:`three_layer_convnet_sequential`.

The architectures are those of :mod:`lab.torch.barebones`:

* two-layer net: flatten - linear (hidden, ReLU) - linear (classes);
* ConvNet: conv 5x5, ``channel_1`` filters, ``padding=2`` - ReLU - conv 3x3,
  ``channel_2`` filters, ``padding=1`` - ReLU - flatten - linear (classes).

Input is NCHW, float32 (N, 3, 32, 32) by default.  The ``nn.Module`` weights
are Kaiming-normal (``nn.init.kaiming_normal_``, variance 2 / fan_in), biases
zero, as in the course; its ``nn.Sequential`` models keep PyTorch's default
initialisation (``init="kaiming"`` asks for Kaiming).  The draws come from PyTorch's global generator (:func:`lab.torch.train.seed_everything`).
The barebones two-layer net has no biases; these modules have them (zero at
first), so with zero biases they give the barebones scores.

:func:`set_params` and :func:`get_params` move weights between a module and
the barebones parameter list (fully connected weights (D_in, D_out), the
transpose of ``nn.Linear.weight``).
"""
from __future__ import annotations

import numbers

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F

from lab._validate import positive_int
from lab.torch.train import _check_float32, _check_images

__all__ = ["TwoLayerFC", "ThreeLayerConvNet", "two_layer_fc_sequential",
           "three_layer_convnet_sequential", "set_params", "get_params"]


def _image_size(image_size):
    if isinstance(image_size, numbers.Integral):
        image_size = (image_size, image_size)
    try:
        H, W = (positive_int(d, "image_size") for d in image_size)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"image_size must be (H, W) of positive ints, got {image_size!r}") from exc
    return H, W


def _init(module, init="kaiming"):
    """Kaiming-normal weights and zero biases for every Linear and Conv2d in
    ``module`` (``init="kaiming"``), or PyTorch's default initialisation left
    as it is (``init="torch"``: uniform in +-1/sqrt(fan_in) for weights and biases)."""
    if init not in ("kaiming", "torch"):
        raise ValueError(f"init must be 'kaiming' or 'torch', got {init!r}")
    if init == "torch":
        return module
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            nn.init.kaiming_normal_(m.weight)
            nn.init.zeros_(m.bias)
    return module


class _CheckInput(nn.Module):
    """First layer of the Sequential models: checks the input, passes it on."""

    def __init__(self, input_size=None, channels=None, image_size=None):
        super().__init__()
        self.input_size, self.channels, self.image_size = input_size, channels, image_size

    def forward(self, x):
        if self.channels is not None or x.ndim == 4:
            _check_images(x, "x", channels=self.channels, image_size=self.image_size)
        else:
            _check_float32(x, "x")
        if self.input_size is not None and (x.ndim < 2 or int(np.prod(x.shape[1:])) != self.input_size):
            raise ValueError(f"x must have shape (N, ...) with {self.input_size} features per "
                             f"sample, got shape {tuple(x.shape)}")
        return x

    def extra_repr(self):
        if self.channels is not None:
            return f"NCHW (N, {self.channels}, {self.image_size[0]}, {self.image_size[1]})"
        return f"(N, ...) with {self.input_size} features"


# ------------------------------------------------------------------ subclassed

class TwoLayerFC(nn.Module):
    """flatten - linear(hidden_size) - ReLU - linear(num_classes), an ``nn.Module``.

    Parameters
    ----------
    input_size : int
        Features per sample after flattening (3 * 32 * 32 for CIFAR-10).
    hidden_size : int
        4000 in the course.
    num_classes : int

    Forward: float32 (N, ...) with ``input_size`` features per sample (NCHW
    images (N, 3, 32, 32)) -> scores (N, num_classes).
    """

    def __init__(self, input_size, hidden_size, num_classes):
        super().__init__()
        self.check = _CheckInput(input_size=positive_int(input_size, "input_size"))
        self.fc1 = nn.Linear(input_size, positive_int(hidden_size, "hidden_size"))
        self.fc2 = nn.Linear(hidden_size, positive_int(num_classes, "num_classes"))
        _init(self)

    def forward(self, x):
        x = self.check(x)
        return self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))


class ThreeLayerConvNet(nn.Module):
    """conv 5x5 (padding 2) - ReLU - conv 3x3 (padding 1) - ReLU - linear, an ``nn.Module``.

    Parameters
    ----------
    in_channel : int
        Input channels (3 for CIFAR-10).
    channel_1, channel_2 : int
        Filters of the two convolutions (32 and 16 in the course).
    num_classes : int
    image_size : (H, W), default (32, 32)

    Forward: float32 NCHW (N, in_channel, H, W) -> scores (N, num_classes).
    """

    def __init__(self, in_channel, channel_1, channel_2, num_classes, *, image_size=(32, 32)):
        super().__init__()
        H, W = _image_size(image_size)
        self.check = _CheckInput(channels=positive_int(in_channel, "in_channel"), image_size=(H, W))
        self.conv1 = nn.Conv2d(in_channel, positive_int(channel_1, "channel_1"), 5, padding=2)
        self.conv2 = nn.Conv2d(channel_1, positive_int(channel_2, "channel_2"), 3, padding=1)
        self.fc = nn.Linear(channel_2 * H * W, positive_int(num_classes, "num_classes"))
        _init(self)

    def forward(self, x):
        x = self.check(x)
        relu1 = F.relu(self.conv1(x))
        relu2 = F.relu(self.conv2(relu1))
        return self.fc(torch.flatten(relu2, 1))


# ------------------------------------------------------------------ Sequential

def two_layer_fc_sequential(input_size=3 * 32 * 32, hidden_size=4000, num_classes=10, *,
                            init="torch"):
    """The two-layer net as an ``nn.Sequential``: (input check) - Flatten -
    Linear(input_size, hidden_size) - ReLU - Linear(hidden_size, num_classes).

    Maps (N, ...) with ``input_size`` features per sample -> (N, num_classes).
    ``init="torch"`` (default, as the course's Sequential models) keeps
    PyTorch's default initialisation; ``init="kaiming"`` draws Kaiming-normal
    weights and zero biases like :class:`TwoLayerFC`.
    """
    input_size = positive_int(input_size, "input_size")
    return _init(nn.Sequential(
        _CheckInput(input_size=input_size),
        nn.Flatten(),
        nn.Linear(input_size, positive_int(hidden_size, "hidden_size")),
        nn.ReLU(),
        nn.Linear(hidden_size, positive_int(num_classes, "num_classes")),
    ), init)


def three_layer_convnet_sequential(in_channel=3, channel_1=32, channel_2=16, num_classes=10, *,
                                   image_size=(32, 32), init="torch"):
    """The ConvNet as an ``nn.Sequential``: (input check) -
    Conv2d(in_channel, channel_1, 5, padding=2) - ReLU -
    Conv2d(channel_1, channel_2, 3, padding=1) - ReLU - Flatten -
    Linear(channel_2 * H * W, num_classes).

    Maps NCHW (N, in_channel, H, W) -> (N, num_classes).  ``init`` as in
    :func:`two_layer_fc_sequential` (default: PyTorch's, as in the course).
    """
    H, W = _image_size(image_size)
    in_channel = positive_int(in_channel, "in_channel")
    channel_1 = positive_int(channel_1, "channel_1")
    channel_2 = positive_int(channel_2, "channel_2")
    return _init(nn.Sequential(
        _CheckInput(channels=in_channel, image_size=(H, W)),
        nn.Conv2d(in_channel, channel_1, 5, padding=2),
        nn.ReLU(),
        nn.Conv2d(channel_1, channel_2, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(channel_2 * H * W, positive_int(num_classes, "num_classes")),
    ), init)


# --------------------------------------------------------------------- weights

def _layers(model):
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def get_params(model):
    """A module's weights as float32 numpy arrays in the barebones order and
    layout: ``[w1, b1, w2, b2]`` for a two-layer net (w (D_in, D_out)),
    ``[conv_w1, conv_b1, conv_w2, conv_b2, fc_w, fc_b]`` for a ConvNet
    (kernels OIHW, fc_w (F2 * H * W, C))."""
    out = []
    for m in _layers(model):
        w = m.weight.detach().cpu().numpy()
        out += [w.T.copy() if isinstance(m, nn.Linear) else w.copy(),
                m.bias.detach().cpu().numpy().copy()]
    return out


def set_params(model, params):
    """Load barebones-ordered parameters into a module (see :func:`get_params`).

    A two-layer net also accepts the barebones ``[w1, w2]`` (no biases): its
    biases are then set to zero.  Shapes must match the module's weights.
    """
    layers = _layers(model)
    params = [p.detach().cpu().numpy() if isinstance(p, torch.Tensor) else np.asarray(p)
              for p in params]
    if len(params) == len(layers):  # weights only
        params = [x for w, m in zip(params, layers) for x in (w, np.zeros(m.bias.shape, np.float32))]
    want = [tuple(s) for m in layers for s in (
        (m.weight.shape[::-1] if isinstance(m, nn.Linear) else m.weight.shape), m.bias.shape)]
    if len(params) != len(want) or any(p.shape != w for p, w in zip(params, want)):
        raise ValueError(f"params must have shapes {want}, got {[p.shape for p in params]}")
    with torch.no_grad():
        for i, m in enumerate(layers):
            w, b = params[2 * i], params[2 * i + 1]
            w = w.T if isinstance(m, nn.Linear) else w
            m.weight.copy_(torch.as_tensor(np.ascontiguousarray(w, dtype=np.float32)))
            m.bias.copy_(torch.as_tensor(np.asarray(b, dtype=np.float32)))
    return model
