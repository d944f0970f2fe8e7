"""The retraining notebook runs top to bottom on the venv's kernel and shows what it promises."""

from __future__ import annotations

from tests.notebooks import run_notebook


def test_retrain_notebook_executes(tmp_path):
    text, pictures = run_notebook("retrain_conversion_model.ipynb", tmp_path)
    assert "saving v0001" in text and ("promote v0002" in text or "keep v0001" in text)
    assert "same rows: both versions scored this holdout" in text
    assert pictures >= 1
    assert "correlation with the true p" in text
    assert "column 'qualification_score': missing" in text
