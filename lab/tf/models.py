"""The course's two networks as Keras 3 models, three ways each.

* subclassed ``keras.Model``: :class:`TwoLayerFC`, :class:`ThreeLayerConvNet`;
* ``keras.Sequential``: :func:`two_layer_fc_sequential`,
  :func:`three_layer_convnet_sequential`;
* the functional API: :func:`two_layer_fc_functional`,
  :func:`three_layer_convnet_functional`.

The architectures are those of :mod:`lab.tf.barebones`:

* two-layer net: flatten - dense (hidden, ReLU) - dense (classes);
* ConvNet: conv 5x5, ``channel_1`` filters, zero padding 2 - ReLU - conv 3x3,
  ``channel_2`` filters, zero padding 1 - ReLU - flatten - dense (classes).
  Keras's ``padding='same'`` at stride 1 pads an odd kernel k by (k - 1) / 2
  on every side: 2 for 5x5, 1 for 3x3, exactly the course's paddings.

Input is NHWC, float32 (N, 32, 32, 3) by default.  Kernels are Kaiming-normal
(``keras.initializers.HeNormal``, a truncated normal with variance
2 / fan_in), biases zero; the draws come from Keras's global seed
(:func:`lab.tf.train.seed_everything`).  The barebones two-layer net has no
biases; these models have them (zero at first), so with zero biases they give
the barebones scores.

:func:`set_params` and :func:`get_params` move weights between a model and the
barebones parameter list, in the same order and layout.
"""
from __future__ import annotations

import numbers

import numpy as np

import keras
from keras import layers

from lab._validate import positive_int
from lab.tf.train import _check_images, _static_shape

__all__ = ["TwoLayerFC", "ThreeLayerConvNet", "two_layer_fc_sequential",
           "three_layer_convnet_sequential", "two_layer_fc_functional",
           "three_layer_convnet_functional", "set_params", "get_params"]


def _image_size(image_size):
    if isinstance(image_size, numbers.Integral):
        image_size = (image_size, image_size)
    try:
        H, W = (positive_int(d, "image_size") for d in image_size)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"image_size must be (H, W) of positive ints, got {image_size!r}") from exc
    return H, W


def _kernel_init():
    return keras.initializers.HeNormal()


def _check_input_size(input_size, input_shape):
    input_size = positive_int(input_size, "input_size")
    input_shape = tuple(positive_int(d, "input_shape") for d in input_shape)
    if int(np.prod(input_shape)) != input_size:
        raise ValueError(f"input_size must equal the product of input_shape {input_shape} "
                         f"({int(np.prod(input_shape))}), got {input_size}")
    return input_size, input_shape


# ------------------------------------------------------------------ subclassed

class TwoLayerFC(keras.Model):
    """flatten - dense(hidden_size, ReLU) - dense(num_classes), subclassing keras.Model.

    Parameters
    ----------
    input_size : int
        Features per sample after flattening (3 * 32 * 32 for CIFAR-10).
    hidden_size : int
        4000 in the course.
    num_classes : int

    Call: float32 (N, ...) with ``input_size`` features per sample (NHWC
    images (N, 32, 32, 3)) -> scores (N, num_classes).
    """

    def __init__(self, input_size, hidden_size, num_classes, **kwargs):
        super().__init__(**kwargs)
        self.input_size = positive_int(input_size, "input_size")
        self.hidden_size = positive_int(hidden_size, "hidden_size")
        self.num_classes = positive_int(num_classes, "num_classes")
        self.flatten = layers.Flatten()
        self.fc1 = layers.Dense(self.hidden_size, activation="relu",
                                kernel_initializer=_kernel_init())
        self.fc2 = layers.Dense(self.num_classes, kernel_initializer=_kernel_init())

    def call(self, x, training=False):
        shape = _static_shape(x)
        if len(shape) == 4:
            _check_images(x, "x")
        if len(shape) < 2 or (None not in shape[1:] and int(np.prod(shape[1:])) != self.input_size):
            raise ValueError(f"x must have shape (N, ...) with {self.input_size} features per "
                             f"sample, got shape {shape}")
        return self.fc2(self.fc1(self.flatten(x)))


class ThreeLayerConvNet(keras.Model):
    """conv 5x5 (pad 2) - ReLU - conv 3x3 (pad 1) - ReLU - dense, subclassing keras.Model.

    Parameters
    ----------
    in_channel : int
        Input channels (3 for CIFAR-10).
    channel_1, channel_2 : int
        Filters of the two convolutions (32 and 16 in the course).
    num_classes : int
    image_size : (H, W), default (32, 32)

    Call: float32 NHWC (N, H, W, in_channel) -> scores (N, num_classes).
    """

    def __init__(self, in_channel, channel_1, channel_2, num_classes, *, image_size=(32, 32),
                 **kwargs):
        super().__init__(**kwargs)
        self.in_channel = positive_int(in_channel, "in_channel")
        self.channel_1 = positive_int(channel_1, "channel_1")
        self.channel_2 = positive_int(channel_2, "channel_2")
        self.num_classes = positive_int(num_classes, "num_classes")
        self.image_size = _image_size(image_size)
        self.input_shape_expected = (None, *self.image_size, self.in_channel)
        self.conv1 = layers.Conv2D(self.channel_1, 5, padding="same", activation="relu",
                                   kernel_initializer=_kernel_init())
        self.conv2 = layers.Conv2D(self.channel_2, 3, padding="same", activation="relu",
                                   kernel_initializer=_kernel_init())
        self.flatten = layers.Flatten()
        self.fc = layers.Dense(self.num_classes, kernel_initializer=_kernel_init())

    def call(self, x, training=False):
        _check_images(x, "x", channels=self.in_channel, image_size=self.image_size)
        relu1 = self.conv1(x)
        relu2 = self.conv2(relu1)
        return self.fc(self.flatten(relu2))


# ------------------------------------------------------------------ Sequential

def two_layer_fc_sequential(input_size=3 * 32 * 32, hidden_size=4000, num_classes=10, *,
                            input_shape=(32, 32, 3)):
    """The two-layer net as a ``keras.Sequential``: Input(input_shape) -
    Flatten - Dense(hidden_size, ReLU) - Dense(num_classes).

    ``input_shape`` is one sample's shape, NHWC (32, 32, 3) by default; its
    product must be ``input_size``.  Maps (N, *input_shape) -> (N, num_classes).
    """
    input_size, input_shape = _check_input_size(input_size, input_shape)
    return keras.Sequential([
        keras.Input(shape=input_shape),
        layers.Flatten(),
        layers.Dense(positive_int(hidden_size, "hidden_size"), activation="relu",
                     kernel_initializer=_kernel_init()),
        layers.Dense(positive_int(num_classes, "num_classes"), kernel_initializer=_kernel_init()),
    ], name="two_layer_fc_sequential")


def three_layer_convnet_sequential(in_channel=3, channel_1=32, channel_2=16, num_classes=10, *,
                                   image_size=(32, 32)):
    """The ConvNet as a ``keras.Sequential``: Input (H, W, in_channel) -
    Conv2D(channel_1, 5x5, 'same' = pad 2, ReLU) - Conv2D(channel_2, 3x3,
    'same' = pad 1, ReLU) - Flatten - Dense(num_classes).

    Maps NHWC (N, H, W, in_channel) -> (N, num_classes).
    """
    H, W = _image_size(image_size)
    return keras.Sequential([
        keras.Input(shape=(H, W, positive_int(in_channel, "in_channel"))),
        layers.Conv2D(positive_int(channel_1, "channel_1"), 5, padding="same", activation="relu",
                      kernel_initializer=_kernel_init()),
        layers.Conv2D(positive_int(channel_2, "channel_2"), 3, padding="same", activation="relu",
                      kernel_initializer=_kernel_init()),
        layers.Flatten(),
        layers.Dense(positive_int(num_classes, "num_classes"), kernel_initializer=_kernel_init()),
    ], name="three_layer_convnet_sequential")


# ------------------------------------------------------------------ functional

def two_layer_fc_functional(input_size=3 * 32 * 32, hidden_size=4000, num_classes=10, *,
                            input_shape=(32, 32, 3)):
    """The two-layer net with the functional API (``keras.Model(inputs, outputs)``);
    same layers and shapes as :func:`two_layer_fc_sequential`."""
    input_size, input_shape = _check_input_size(input_size, input_shape)
    inputs = keras.Input(shape=input_shape)
    x = layers.Flatten()(inputs)
    x = layers.Dense(positive_int(hidden_size, "hidden_size"), activation="relu",
                     kernel_initializer=_kernel_init())(x)
    scores = layers.Dense(positive_int(num_classes, "num_classes"),
                          kernel_initializer=_kernel_init())(x)
    return keras.Model(inputs=inputs, outputs=scores, name="two_layer_fc_functional")


def three_layer_convnet_functional(in_channel=3, channel_1=32, channel_2=16, num_classes=10, *,
                                   image_size=(32, 32)):
    """The ConvNet with the functional API; same layers and shapes as
    :func:`three_layer_convnet_sequential`, NHWC (N, H, W, in_channel) ->
    (N, num_classes)."""
    H, W = _image_size(image_size)
    inputs = keras.Input(shape=(H, W, positive_int(in_channel, "in_channel")))
    relu1 = layers.Conv2D(positive_int(channel_1, "channel_1"), 5, padding="same",
                          activation="relu", kernel_initializer=_kernel_init())(inputs)
    relu2 = layers.Conv2D(positive_int(channel_2, "channel_2"), 3, padding="same",
                          activation="relu", kernel_initializer=_kernel_init())(relu1)
    scores = layers.Dense(positive_int(num_classes, "num_classes"),
                          kernel_initializer=_kernel_init())(layers.Flatten()(relu2))
    return keras.Model(inputs=inputs, outputs=scores, name="three_layer_convnet_functional")


# --------------------------------------------------------------------- weights

def _built(model):
    if not model.built or not model.weights:
        raise ValueError("model has no weights yet: call it once on a batch (or build it) first")


def get_params(model):
    """A model's weights as float32 numpy arrays in the barebones order:
    ``[w1, b1, w2, b2]`` for a two-layer net (dense kernels (D_in, D_out)),
    ``[conv_w1, conv_b1, conv_w2, conv_b2, fc_w, fc_b]`` for a ConvNet (HWIO)."""
    _built(model)
    return [np.asarray(w, dtype=np.float32) for w in model.get_weights()]


def set_params(model, params):
    """Load barebones-ordered parameters into a model (see :func:`get_params`).

    A two-layer net also accepts the barebones ``[w1, w2]`` (no biases): its
    biases are then set to zero.  Shapes must match the model's weights.
    A subclassed model that was never called is built on a zero batch first.
    """
    if not model.built or not model.weights:
        shape = getattr(model, "input_shape_expected", None)
        if shape is None and isinstance(model, TwoLayerFC):
            shape = (None, model.input_size)
        if shape is None:
            raise ValueError("model has no weights yet: call it once on a batch first")
        model(np.zeros((1, *shape[1:]), np.float32))
    current = model.get_weights()
    params = [np.asarray(getattr(p, "numpy", lambda p=p: p)(), dtype=np.float32) for p in params]
    if len(current) == 4 and len(params) == 2:
        params = [params[0], np.zeros(current[1].shape, np.float32),
                  params[1], np.zeros(current[3].shape, np.float32)]
    if len(params) != len(current) or any(p.shape != c.shape for p, c in zip(params, current)):
        raise ValueError(f"params must have shapes {[c.shape for c in current]}, got "
                         f"{[p.shape for p in params]}")
    model.set_weights(params)
    return model
