"""Error bodies, the ``responses=`` each route documents, and the exception handlers.

* bad input — a 422 listing every problem as ``{file, row, column, value, rule}``,
  the same detail the CLI prints (``InputError.problems``); a request the
  schema rejects is reported the same way (``file`` is the body's list, the
  query or the path);
* an infeasible policy — a 409 naming the rules in conflict;
* a conflict with stored state (a lead ingested with other content, a lead
  taken by a concurrent round) — a 409 saying what and which ids;
* unknown ids — a 404 naming the id;
* a lifecycle move the lead's state does not allow — a 409 naming the state,
  the move and the moves allowed.

There is deliberately no catch-all handler: inputs are validated so that
nothing reaches the database or the solver in a shape that could fail.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from allocator.errors import InfeasiblePolicyError, InputError, InputProblem
from service.db.offers import LifecycleConflictError
from service.lifecycle.states import IllegalTransition


class ErrorOut(BaseModel):
    """A failed request: what went wrong, in words."""

    detail: str


class ProblemOut(BaseModel):
    """One problem in the input: where it is, the value and the rule it breaks."""

    file: str
    row: int | None = Field(None, description="1-based data row; null for file-level problems")
    column: str | None = None
    value: Any = None
    rule: str


class ProblemsOut(BaseModel):
    """Every problem found in the input at once (never just the first)."""

    detail: str
    problems: list[ProblemOut]


class InfeasibleOut(BaseModel):
    """The policy cannot be met: the conflicts in words and the rules' stable names."""

    detail: str
    conflicts: list[str]
    rules: list[str]


class ConflictOut(BaseModel):
    """The request conflicts with stored state; ``ids`` are the records involved."""

    detail: str
    ids: list[str] = []


class TransitionOut(BaseModel):
    """A lifecycle move the lead's state does not allow, with the moves that are allowed."""

    detail: str
    state: str
    event: str
    allowed: list[str]


class ConflictError(Exception):
    """A request that contradicts what is stored (HTTP 409)."""

    def __init__(self, detail: str, ids: Sequence[str] = ()) -> None:
        super().__init__(detail)
        self.detail = detail
        self.ids = list(ids)


class NotFoundError(Exception):
    """An id that names nothing stored (HTTP 404)."""

    def __init__(self, kind: str, ident: object) -> None:
        self.detail = f"No {kind} has id {ident!r}."
        super().__init__(self.detail)


_DOCS: dict[int, tuple[type[BaseModel], str]] = {
    400: (ErrorOut, "The body cannot be parsed (not UTF-8 JSON, or broken multipart data)."),
    401: (ErrorOut, "No API key, or a key that is unknown, malformed or revoked."),
    403: (ErrorOut, "The key's role may not use this route, or not for this partner."),
    404: (ErrorOut, "No record has the id given in the path."),
    409: (ConflictOut, "The request conflicts with stored state."),
    413: (ErrorOut, "The uploaded file is larger than the service accepts."),
    422: (ProblemsOut, "The input breaks the contract: every problem, with row and column."),
}


def responses(*codes: int, **overrides: tuple[type[BaseModel], str]) -> dict[int | str, Any]:
    """The ``responses=`` mapping documenting ``codes`` (``overrides``: ``_409=(Model, text)``)."""
    out: dict[int | str, Any] = {}
    for code in codes:
        model, text = overrides.get(f"_{code}", _DOCS[code])
        out[code] = {"model": model, "description": text}
    return out


def _json_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | str):
        return value if not isinstance(value, str) else value[:200]
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    text = repr(value)
    return text if len(text) <= 200 else text[:197] + "..."


def problems_body(problems: Sequence[InputProblem]) -> dict[str, Any]:
    """The 422 body for ``problems`` (the CLI's text as ``detail``)."""
    return {
        "detail": str(InputError(problems)),
        "problems": [{**p.to_dict(), "value": _json_value(p.value)} for p in problems],
    }


def _problem_from_pydantic(err: dict[str, Any]) -> InputProblem:
    loc = list(err.get("loc", ()))
    where = str(loc.pop(0)) if loc else "request"
    if where == "body" and loc and isinstance(loc[0], str) and len(loc) > 1:
        where = str(loc.pop(0))  # the body's list: "partners", "leads", ...
    row = None
    if loc and isinstance(loc[0], int):
        row = loc.pop(0) + 1
    column = ".".join(str(p) for p in loc) or None
    kind = err.get("type")
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    if kind == "missing":
        return InputProblem(where, row, column, None, f"'{column}' is required")
    if column and msg[:1].islower():
        msg = f"'{column}' {msg}"
    return InputProblem(where, row, column, err.get("input"), msg)


async def _on_request_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems: list[InputProblem] = []
    seen: set[tuple[str, int | None, str | None]] = set()
    for err in exc.errors():
        problem = _problem_from_pydantic(dict(err))
        # A value failing every branch of a union is one problem, not one per branch.
        if (problem.file, problem.row, problem.column) not in seen:
            seen.add((problem.file, problem.row, problem.column))
            problems.append(problem)
    return JSONResponse(problems_body(problems), status_code=422)


async def _on_input_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InputError)
    return JSONResponse(problems_body(exc.problems), status_code=422)


async def _on_infeasible(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InfeasiblePolicyError)
    body = {"detail": str(exc), "conflicts": exc.conflicts, "rules": exc.rules}
    return JSONResponse(body, status_code=status.HTTP_409_CONFLICT)


async def _on_conflict(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ConflictError)
    return JSONResponse({"detail": exc.detail, "ids": exc.ids}, status_code=409)


async def _on_not_found(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, NotFoundError)
    return JSONResponse({"detail": exc.detail}, status_code=404)


async def _on_illegal_transition(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, IllegalTransition)
    body = {"detail": str(exc), "state": str(exc.current), "event": str(exc.event),
            "allowed": [str(e) for e in exc.allowed]}
    return JSONResponse(body, status_code=status.HTTP_409_CONFLICT)


async def _on_lifecycle_conflict(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, LifecycleConflictError)
    return JSONResponse({"detail": exc.detail, "ids": exc.ids}, status_code=409)


def install_handlers(app: FastAPI) -> None:
    """Register the handlers that turn known failures into their documented answers."""
    app.add_exception_handler(RequestValidationError, _on_request_validation)
    app.add_exception_handler(InputError, _on_input_error)
    app.add_exception_handler(InfeasiblePolicyError, _on_infeasible)
    app.add_exception_handler(ConflictError, _on_conflict)
    app.add_exception_handler(NotFoundError, _on_not_found)
    app.add_exception_handler(IllegalTransition, _on_illegal_transition)
    app.add_exception_handler(LifecycleConflictError, _on_lifecycle_conflict)
