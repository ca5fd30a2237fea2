"""lab: neural networks built by hand.

The NumPy parts of the package import only NumPy, SciPy and Matplotlib;
TensorFlow and PyTorch are loaded only by ``lab.tf`` and ``lab.torch``.

Modules
-------
data            image patches, preprocessing, CIFAR-10, minibatches
gradient_check  numerical gradients and relative errors
vis             image grids and training curves
autoencoder     the sparse autoencoder in NumPy
layers          naive layers (affine, relu, conv, pool, batch/group norm)
fast_layers     vectorised convolution and pooling
layer_utils     sandwich layers
cnn             ThreeLayerConvNet
optim           update rules
solver          Solver
"""

__version__ = "0.1.0"
