"""The promoted conversion model, as the service holds it (loaded in the app's lifespan).

Rounds check the registry's pointer before scoring and reload when another
worker (or ``fairlead train``) promoted a new version, so every worker scores
with the version promoted at the time the round starts.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from models.registry import ModelRegistry
from models.scoring import TrainedModel

_LOCK = threading.Lock()


@dataclass(frozen=True)
class ModelState:
    """What ``/health`` reports and what rounds score with."""

    loaded: bool
    version: str | None
    detail: str
    model: TrainedModel | None = None


def not_loaded() -> ModelState:
    return ModelState(False, None, "the model has not been loaded yet (the app has not started)")


def load_model_state(model_dir: Path) -> ModelState:
    """Load the promoted version from the registry at ``model_dir``, or say why there is none."""
    if not model_dir.is_dir():
        return ModelState(False, None, f"no model registry at {model_dir}: rounds run without "
                          "a model until one is trained (POST /models or `fairlead train`)")
    registry = ModelRegistry(model_dir)
    version = registry.promoted()
    if version is None:
        n = len(registry.version_names())
        return ModelState(False, None, f"the registry at {model_dir} has {n} version(s) and "
                          "none promoted: rounds run without a model")
    try:
        model = registry.load(version)
    except Exception as exc:  # a broken artifact must not stop the service: /health says it
        return ModelState(False, None, f"could not load version {version} from {model_dir}: "
                          f"{type(exc).__name__}: {exc}")
    return ModelState(True, version, f"version {version} from {model_dir}", model)


def current_model(holder: Any, model_dir: Path) -> ModelState:
    """The state held on ``holder`` (``app.state``), reloaded if the promoted version changed."""
    state: ModelState = holder.model
    promoted = ModelRegistry(model_dir).promoted() if model_dir.is_dir() else None
    if promoted == state.version:
        return state
    with _LOCK:
        state = holder.model
        if promoted != state.version:
            state = load_model_state(model_dir)
            holder.model = state
    return state
