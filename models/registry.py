"""Model versions in a folder: save, list, load, promote, roll back.

Layout::

    DIR/
      versions/v0001/model.joblib      the TrainedModel (joblib pickle)
      versions/v0001/metadata.json     data fingerprint, feature schema, metrics,
                                       created_at, parent version, ...
      versions/v0001/reliability.png   reliability diagram of the holdout
      promoted.json                    {"promoted": "v0002", "history": ["v0001", "v0002"]}

A version number is claimed with an exclusive ``mkdir``, so two trainings
writing to one folder never share a version; ``metadata.json`` is written last
(a version without it is incomplete and not listed).  ``promoted.json`` is
replaced atomically.  Rolling back re-promotes the version promoted before
the current one.

Only load artifacts from folders you trust: joblib files are pickles.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import joblib

from allocator.errors import InputError, InputProblem
from models.scoring import TrainedModel

ARTIFACT = "model.joblib"
METADATA = "metadata.json"
RELIABILITY = "reliability.png"
POINTER = "promoted.json"
_VERSION = re.compile(r"^v(\d{4,})$")


@dataclass(frozen=True)
class VersionInfo:
    """One saved version as listed: name, creation time, parent, metrics, promoted flag."""

    version: str
    created_at: str
    parent: str | None
    metrics: dict[str, Any]
    promoted: bool


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "item"):
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=_json_default, allow_nan=False) + "\n")
    os.replace(tmp, path)


class ModelRegistry:
    """A registry folder of model versions.

    Parameters
    ----------
    root : str or Path
        The folder (created on first save).
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def versions_dir(self) -> Path:
        return self.root / "versions"

    def _problem(self, value: Any, rule: str) -> InputError:
        return InputError([InputProblem(str(self.root), None, None, value, rule)])

    def version_names(self) -> list[str]:
        """Complete versions, oldest first."""
        if not self.versions_dir.is_dir():
            return []
        names = [
            d.name for d in self.versions_dir.iterdir()
            if _VERSION.match(d.name) and (d / METADATA).is_file()
        ]
        return sorted(names, key=lambda n: int(n[1:]))

    def path(self, version: str) -> Path:
        """Folder of ``version``; raises :class:`InputError` when it does not exist."""
        if version not in self.version_names():
            known = ", ".join(self.version_names()) or "none"
            raise self._problem(version, f"no such model version (versions: {known})")
        return self.versions_dir / version

    def _pointer(self) -> dict[str, Any]:
        file = self.root / POINTER
        if not file.is_file():
            return {"promoted": None, "history": []}
        data: dict[str, Any] = json.loads(file.read_text())
        return data

    def promoted(self) -> str | None:
        """The promoted version, or ``None``."""
        value = self._pointer().get("promoted")
        return str(value) if value else None

    def latest(self) -> str | None:
        """The newest complete version, or ``None``."""
        names = self.version_names()
        return names[-1] if names else None

    def metadata(self, version: str) -> dict[str, Any]:
        """The metadata JSON of ``version``."""
        data: dict[str, Any] = json.loads((self.path(version) / METADATA).read_text())
        return data

    def list(self) -> list[VersionInfo]:
        """Every complete version, oldest first."""
        promoted = self.promoted()
        out = []
        for name in self.version_names():
            meta = self.metadata(name)
            out.append(VersionInfo(name, meta.get("created_at", ""), meta.get("parent"),
                                   meta.get("metrics", {}), name == promoted))
        return out

    def create_version(self) -> tuple[str, Path]:
        """Claim the next version number; returns its name and (empty) folder."""
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        taken = [int(d.name[1:]) for d in self.versions_dir.iterdir() if _VERSION.match(d.name)]
        number = max(taken, default=0) + 1
        while True:
            name = f"v{number:04d}"
            try:
                (self.versions_dir / name).mkdir()
                return name, self.versions_dir / name
            except FileExistsError:
                number += 1

    def save(self, model: TrainedModel, metadata: dict[str, Any], folder: Path,
             version: str) -> None:
        """Write the artifact, then the metadata (which completes the version)."""
        joblib.dump(model, folder / ARTIFACT, compress=3)
        meta = {"version": version, "created_at": datetime.now(UTC).isoformat(), **metadata}
        _write_json(folder / METADATA, meta)
        model.version, model.metadata = version, meta

    def load(self, version: str | None = None) -> TrainedModel:
        """Load ``version``, or the promoted one when ``None``.

        Raises
        ------
        InputError
            When the folder holds no such version, or none is promoted.
        """
        if version is None:
            version = self.promoted()
            if version is None:
                known = ", ".join(self.version_names()) or "none"
                raise self._problem(
                    None, f"no model version is promoted (versions: {known}); "
                    "promote one with `fairlead models promote VERSION`",
                )
        folder = self.path(version)
        model = joblib.load(folder / ARTIFACT)
        if not isinstance(model, TrainedModel):
            raise self._problem(version, f"{ARTIFACT} does not hold a fairlead TrainedModel")
        model.version, model.metadata = version, self.metadata(version)
        return model

    def promote(self, version: str) -> str:
        """Make ``version`` the promoted one; returns it."""
        self.path(version)
        pointer = self._pointer()
        if pointer.get("promoted") == version:
            return version
        history = [*pointer.get("history", []), version]
        _write_json(self.root / POINTER, {"promoted": version, "history": history})
        return version

    def rollback(self) -> str:
        """Re-promote the version promoted before the current one; returns it.

        Raises
        ------
        InputError
            When fewer than two versions have been promoted.
        """
        history = list(self._pointer().get("history", []))
        current = history.pop() if history else None
        if not history:
            raise self._problem(current, "nothing to roll back to: no version was promoted "
                                         "before the current one")
        _write_json(self.root / POINTER, {"promoted": history[-1], "history": history})
        return str(history[-1])
