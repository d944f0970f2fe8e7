"""Error types shared by every layer: one problem = file, row, column, value, rule.

Every input check in fairlead reports *all* problems at once as a list of
:class:`InputProblem`; the shells (CLI, service) turn an :class:`InputError`
into exit status 2 or an HTTP 422 with the same detail.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class InputProblem:
    """One thing wrong with an input.

    Attributes
    ----------
    file : str
        File (or resource) name, e.g. ``"partners.csv"`` or ``"policy.toml"``.
    row : int or None
        1-based data row (the header is not counted); ``None`` for file-level problems.
    column : str or None
        Column (or policy key path) the problem is in.
    value : Any
        The offending value, as read.
    rule : str
        The rule that was broken, in words.
    """

    file: str
    row: int | None
    column: str | None
    value: Any
    rule: str

    def __str__(self) -> str:
        where = [self.file]
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            label = "key" if self.file.endswith(".toml") else "column"
            where.append(f"{label} '{self.column}'")
        shown = "" if self.value is None else f": value {self.value!r}"
        return f"{', '.join(where)}{shown}: {self.rule}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (values that are not JSON scalars become strings)."""
        out = asdict(self)
        if not isinstance(out["value"], str | int | float | bool | type(None)):
            out["value"] = str(out["value"])
        return out


class InputError(ValueError):
    """Raised with every problem found in an input, never just the first."""

    def __init__(self, problems: Iterable[InputProblem]) -> None:
        self.problems: list[InputProblem] = list(problems)
        super().__init__(self._text())

    def _text(self) -> str:
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} in the input:"
        return "\n".join([head, *(f"  - {p}" for p in self.problems)])


class InfeasiblePolicyError(ValueError):
    """A hard policy that no allocation can satisfy.

    Parameters
    ----------
    conflicts : sequence of str
        The rules in conflict, each in words and numbers, e.g.
        ``"floors need 410 leads but only 380 qualified leads are eligible for tier bronze"``.
    rules : sequence of str
        Stable names of the rules involved, e.g. ``"floor[partner=P3]"``.
    """

    def __init__(self, conflicts: Sequence[str], rules: Sequence[str] = ()) -> None:
        self.conflicts = list(conflicts)
        self.rules = list(rules)
        super().__init__("The policy is infeasible: " + "; ".join(self.conflicts))


def raise_if_problems(problems: Sequence[InputProblem]) -> None:
    """Raise :class:`InputError` when ``problems`` is not empty."""
    if problems:
        raise InputError(problems)
