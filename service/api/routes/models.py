"""Model versions: train from the stored outcome history, list, promote."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Request, status

from models.registry import ModelRegistry
from models.train import train_model
from service.api.deps import CallerDep, SessionDep, SettingsDep
from service.api.errors import NotFoundError, responses
from service.api.fields import PathIdent
from service.api.model_state import current_model, load_model_state
from service.api.routes._router import protected_router
from service.api.schemas import ModelVersionPublic, TrainCreate
from service.api.storage import commit_or_conflict
from service.contract import validate_history, validate_partners
from service.db import audit
from service.db import history as history_repo
from service.db import partners as partners_repo
from service.db.keys import Principal
from service.db.records import history_frame, jsonable, partners_frame

router = protected_router("/models", "models")


def _public(registry: ModelRegistry, version: str, promoted: str | None) -> ModelVersionPublic:
    meta = registry.metadata(version)
    return ModelVersionPublic(
        version=version, promoted=version == promoted, created_at=meta.get("created_at"),
        metrics=jsonable(meta.get("metrics", {})),
        metadata=jsonable({k: meta.get(k) for k in ("parent", "data", "model", "baseline",
                                                     "by_tier", "previous")}),
    )


@router.get("", response_model=list[ModelVersionPublic], summary="List model versions")
def list_models(settings: SettingsDep) -> list[ModelVersionPublic]:
    registry = ModelRegistry(settings.model_dir)
    promoted = registry.promoted() if settings.model_dir.is_dir() else None
    return [_public(registry, v, promoted) for v in registry.version_names()]


@router.post(
    "",
    response_model=ModelVersionPublic,
    status_code=status.HTTP_201_CREATED,
    summary="Train a new version from the stored outcome history",
    responses=responses(400, 422),
)
def train(
    body: TrainCreate, request: Request, session: SessionDep, settings: SettingsDep,
    caller: CallerDep,
) -> ModelVersionPublic:
    """Held-out AUC, log loss, Brier score and ECE are in ``metrics``; the first version of
    a registry is promoted, later ones when ``promote`` is true."""
    history = validate_history(history_frame(history_repo.all_history(session)),
                               file="stored history")
    partners = validate_partners(partners_frame(partners_repo.all_partners(session)),
                                 file="stored partners")
    result = train_model(history, partners if len(partners) else None, exclude=body.exclude,
                         model_dir=settings.model_dir, promote=True if body.promote else None)
    assert result.version is not None
    _audit(session, caller, "model.trained", result.version,
           {"metrics": jsonable(result.metrics), "promoted": result.promoted})
    if result.promoted:
        request.app.state.model = load_model_state(settings.model_dir)
    registry = ModelRegistry(settings.model_dir)
    return _public(registry, result.version, registry.promoted())


@router.post(
    "/{version}/promote",
    response_model=ModelVersionPublic,
    summary="Promote a version: rounds score with it from now on",
    responses=responses(404, 422),
)
def promote(
    version: Annotated[PathIdent, Path()], request: Request, session: SessionDep,
    settings: SettingsDep, caller: CallerDep,
) -> ModelVersionPublic:
    registry = ModelRegistry(settings.model_dir)
    if version not in registry.version_names():
        raise NotFoundError("model version", version)
    previous = registry.promoted()
    registry.promote(version)
    _audit(session, caller, "model.promoted", version, {"previous": previous})
    current_model(request.app.state, settings.model_dir)
    return _public(registry, version, version)


def _audit(session: SessionDep, caller: Principal, action: str, version: str,
           detail: dict[str, object]) -> None:
    audit.record(session, actor=caller.actor, actor_role=caller.role, action=action,
                 entity_type="model", entity_id=version, detail=detail)
    commit_or_conflict(session, "audit log")
