import io

import pytest

from lab import progress as pr


def test_disabled_bar_prints_nothing(capsys):
    bar = pr.progress(total=3, enabled=False)
    for _ in range(3):
        bar.update(loss=0.5)
    bar.write("hidden")
    bar.close()
    out = capsys.readouterr()
    assert bar.n == 3 and out.out == "" and out.err == ""


def test_enabled_bar_shows_count_and_postfix(capsys):
    with pr.progress(total=4, desc="train", enabled=True) as bar:
        for _ in range(4):
            bar.update(loss=0.123456)
    err = capsys.readouterr().err
    assert "train" in err and "4/4" in err and "loss=0.1235" in err


@pytest.mark.parametrize("env, tty, expected", [
    ("1", False, True), ("0", True, False), ("", True, True), ("", False, False),
    ("on", False, True), ("off", True, False)])
def test_default_follows_environment_then_terminal(monkeypatch, env, tty, expected):
    monkeypatch.setenv("LAB_PROGRESS", env)

    class Err(io.StringIO):
        def isatty(self):
            return tty

    monkeypatch.setattr("sys.stderr", Err())
    assert pr.progress_enabled(None) is expected


def test_bad_settings(monkeypatch):
    monkeypatch.setenv("LAB_PROGRESS", "maybe")
    with pytest.raises(ValueError, match="LAB_PROGRESS must be 1 or 0, got 'maybe'"):
        pr.progress_enabled(None)
    with pytest.raises(TypeError, match="enabled must be True, False or None"):
        pr.progress(enabled="yes")
