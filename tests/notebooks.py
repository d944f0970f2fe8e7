"""Running a notebook of ``notebooks/`` top to bottom on the venv's kernel, for the tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _text(cell: Any) -> str:
    parts = []
    for out in cell.get("outputs", []):
        parts.append(out.get("text", ""))
        parts.extend(str(v) for k, v in out.get("data", {}).items() if k.startswith("text/"))
    return "\n".join(parts)


def run_notebook(name: str, workdir: Path) -> tuple[str, int]:
    """Execute ``notebooks/<name>`` in ``workdir``; return its printed text and picture count.

    Fails the test when any cell raised.
    """
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(workdir)}}).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    errors = [o for c in code for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors, errors
    pictures = sum("image/png" in o.get("data", {}) for c in code for o in c.get("outputs", []))
    return "\n".join(_text(c) for c in code), pictures
