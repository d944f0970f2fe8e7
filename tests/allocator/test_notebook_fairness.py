"""The fairness-versus-yield notebook runs top to bottom and shows what it promises."""

from __future__ import annotations

from tests.notebooks import run_notebook


def test_fairness_notebook_executes(tmp_path):
    text, pictures = run_notebook("fairness_vs_yield.ipynb", tmp_path)
    assert "Chosen: alpha = " in text and "Today's policy guarantees" in text
    assert "current policy" in text and "no guarantee" in text
    assert "floors bind at the chosen point" in text and "checked: True" in text
    assert pictures == 2
