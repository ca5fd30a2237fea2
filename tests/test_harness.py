"""The test harness itself: nbval must catch a stored output that the code no
longer produces, and the NumPy side of lab must not load the frameworks."""
import json
import pathlib
import subprocess
import sys

import nbformat
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def run_nbval(nb_path, *extra):
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval",
         "--nbval-sanitize-with", str(ROOT / "tests" / "nbval_sanitize.cfg"), *extra, str(nb_path)],
        capture_output=True, text=True, cwd=nb_path.parent, timeout=300,
    )


def make_notebook(path, stored_text):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("print(6 * 7)")
    cell.execution_count = 1
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=stored_text)]
    nb.cells = [cell]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def test_nbval_passes_a_faithful_notebook(tmp_path):
    nb = tmp_path / "good.ipynb"
    make_notebook(nb, "42\n")
    result = run_nbval(nb)
    assert result.returncode == 0, result.stdout + result.stderr


def test_nbval_fails_a_stale_notebook(tmp_path):
    nb = tmp_path / "stale.ipynb"
    make_notebook(nb, "41\n")
    result = run_nbval(nb)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "1 failed" in result.stdout


def test_every_book_notebook_is_in_the_toc_and_executed():
    toc = (ROOT / "_toc.yml").read_text()
    notebooks = sorted((ROOT / "book").rglob("*.ipynb"))
    assert notebooks, "the book has no chapters"
    for path in notebooks:
        rel = path.relative_to(ROOT).with_suffix("").as_posix()
        assert f"file: {rel}" in toc, f"{rel} is not listed in _toc.yml"
        nb = json.loads(path.read_text())
        counts = [c.get("execution_count") for c in nb["cells"]
                  if c["cell_type"] == "code" and "".join(c["source"]).strip()]
        assert all(isinstance(c, int) for c in counts), f"{rel} has unexecuted cells"
        assert counts == sorted(counts) and len(set(counts)) == len(counts), f"{rel} ran out of order"


@pytest.mark.parametrize("module", ["lab", "lab.data", "lab.vis", "lab.gradient_check",
                                    "lab.autoencoder", "lab.layers", "lab.fast_layers",
                                    "lab.layer_utils", "lab.cnn", "lab.optim", "lab.solver"])
def test_numpy_modules_do_not_import_frameworks(module):
    code = (f"import sys, importlib; importlib.import_module({module!r}); "
            "print(sorted(m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
