"""Test configuration shared by the unit tests.

Figures are drawn with the non-interactive Agg backend, and every test gets its
own empty cache folder so that no test reads or writes the user's cache.
"""
import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch, request):
    if "real_cache" in request.keywords:
        return
    monkeypatch.setenv("LAB_CACHE", str(tmp_path / "cache"))


def pytest_configure(config):
    config.addinivalue_line("markers", "real_cache: use the user's cache folder (slow data)")
