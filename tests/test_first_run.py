"""First runs print nothing unexpected.

nbval compares every output of a chapter, stderr included, so a message that
appears only on a machine's first run (a cache being built, a library warning
at its first import) fails the suite there and shows up in a reader's
notebook.  These tests run the first-run paths in a fresh Jupyter kernel with
empty caches and check that nothing reaches stderr.
"""
import os

import nbformat
import pytest
from nbclient import NotebookClient


def _run_cells(cells, env, timeout=300):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    old = dict(os.environ)
    os.environ.update(env)
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3").execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    return [
        [(o.get("name", o["output_type"]), o.get("text", "")) for o in cell.outputs]
        for cell in nb.cells
    ]


@pytest.fixture
def fresh_env(tmp_path):
    (tmp_path / "matplotlib").mkdir()
    return {"LAB_CACHE": str(tmp_path / "lab"), "MPLCONFIGDIR": str(tmp_path / "matplotlib"),
            "KERAS_HOME": str(tmp_path / "keras"), "IPYTHONDIR": str(tmp_path / "ipython")}


def test_patches_first_run_without_ipywidgets_is_silent(fresh_env):
    """Building the patch cache imports scikit-image's data module, pooch and
    tqdm.auto for the first time; in a kernel without ipywidgets tqdm warns
    'IProgress not found' at that import unless lab filters it."""
    outputs = _run_cells([
        "import sys\nsys.modules['ipywidgets'] = None  # a Jupyter without ipywidgets",
        "from lab import data\np = data.load_patches(num_patches=64)\nprint(p.data.shape)",
        "p = data.load_patches(num_patches=64)  # now from the cache\nprint(p.data.shape)",
    ], fresh_env)
    assert outputs == [[], [("stdout", "(64, 3, 16, 16)\n")], [("stdout", "(64, 3, 16, 16)\n")]]


def test_matplotlib_first_import_is_silent(fresh_env):
    outputs = _run_cells([
        "import matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\n"
        "fig, ax = plt.subplots(); ax.set_title('x'); fig.canvas.draw(); print('ok')",
    ], fresh_env)
    assert outputs == [[("stdout", "ok\n")]]


def test_tensorflow_and_torch_first_import_is_silent(fresh_env):
    """lab.tf silences TensorFlow's C++ start-up log; Keras writes its settings
    file into an empty KERAS_HOME on first import without a word."""
    outputs = _run_cells([
        "import lab.tf, keras, tensorflow as tf\nprint(keras.backend.backend())",
        "import lab.torch, torch\nprint(torch.ones(2).sum().item())",
    ], fresh_env)
    assert outputs == [[("stdout", "tensorflow\n")], [("stdout", "2.0\n")]]
