"""What the file-reading commands share: loading every input at once, the model folder.

Each command reports the problems of *all* its files together (exit 2), so a
user fixes everything in one pass.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from allocator.errors import InputError, InputProblem
from allocator.policy import Policy


def load_all(loaders: list[tuple[str, Callable[[], Any]]]) -> dict[str, Any]:
    """Run every loader; raise one InputError with the problems of all files."""
    out: dict[str, Any] = {}
    problems: list[InputProblem] = []
    for name, load in loaders:
        try:
            out[name] = load()
        except InputError as exc:
            problems.extend(exc.problems)
        except FileNotFoundError as exc:
            problems.append(InputProblem(str(exc.filename or name), None, None, None,
                                         "no such file"))
    if problems:
        raise InputError(problems)
    return out


def load_policy_or_problems(path: Path) -> tuple[Policy | None, list[InputProblem]]:
    """The policy, or ``None`` and its problems (reported with the other files' problems)."""
    from service.contract import load_policy

    try:
        return load_policy(path), []
    except InputError as exc:
        return None, exc.problems
    except FileNotFoundError as exc:
        return None, [InputProblem(str(exc.filename or path), None, None, None, "no such file")]


def promoted_model(folder: Path) -> Any:
    """The promoted version of the model registry at ``folder``."""
    from models.registry import ModelRegistry

    if not folder.is_dir():
        raise InputError([InputProblem(str(folder), None, "--model", str(folder),
                                       "the model folder does not exist")])
    return ModelRegistry(folder).load()


Loaders = list[tuple[str, Callable[[], Any]]]


def load_round_inputs(
    policy_path: Path,
    first: Callable[[Policy | None], Loaders],
    then: Callable[[dict[str, Any]], Loaders] | None = None,
) -> tuple[Policy, dict[str, Any]]:
    """The policy and a round's files, with every problem of every file in one error.

    Parameters
    ----------
    policy_path : Path
    first : callable
        The loaders, given the policy (``None`` when the policy itself is bad:
        the other files are still checked so all problems come out together).
    then : callable, optional
        Loaders that need the first frames (pairs checked against partners and leads).

    Raises
    ------
    InputError
        The problems of the policy and of every file that could be read.
    """
    policy, policy_problems = load_policy_or_problems(policy_path)
    try:
        frames = load_all(first(policy))
        if then is not None:
            frames.update(load_all(then(frames)))
    except InputError as exc:
        raise InputError([*policy_problems, *exc.problems]) from None
    if policy is None:
        raise InputError(policy_problems)
    return policy, frames


def pairs_after(path: Path) -> Callable[[dict[str, Any]], Loaders]:
    """Loaders for a pairs file, checked against the partners (and leads) loaded first."""
    from service.contract import load_pairs

    def loaders(frames: dict[str, Any]) -> Loaders:
        return [("pairs", lambda: load_pairs(path, partners=frames["partners"],
                                             leads=frames.get("leads")))]

    return loaders
