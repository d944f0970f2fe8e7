"""What every command shares: the stderr console, JSON output and exit statuses.

Exit statuses (SPEC.md): 0 success, 2 bad input or infeasible policy (reason in
words), 1 internal fault.  No traceback reaches the user unless
``FAIRLEAD_DEBUG=1``.
"""

from __future__ import annotations

import functools
import json
import os
import sys
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from allocator.errors import InfeasiblePolicyError, InputError

err_console = Console(stderr=True, highlight=False)
out_console = Console(highlight=False)

P = ParamSpec("P")
R = TypeVar("R")


def _jsonable(obj: Any) -> Any:
    if hasattr(obj, "item"):  # numpy scalars
        return obj.item()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    return str(obj)


def emit_json(data: Any) -> None:
    """Print ``data`` as JSON on stdout (numpy values converted)."""
    sys.stdout.write(json.dumps(data, indent=2, default=_jsonable) + "\n")
    sys.stdout.flush()


def handle_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn known failures into a clear message and the contract's exit status."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except typer.Exit:
            raise
        except InputError as exc:
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(2) from None
        except InfeasiblePolicyError as exc:
            err_console.print(f"[bold red]infeasible policy:[/] {escape(str(exc))}", soft_wrap=True)
            raise typer.Exit(2) from None
        except FileNotFoundError as exc:
            err_console.print(f"[bold red]error:[/] no such file: {escape(str(exc.filename))}")
            raise typer.Exit(2) from None
        except Exception as exc:
            if os.environ.get("FAIRLEAD_DEBUG"):
                raise
            err_console.print(
                f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))}\n"
                "(set FAIRLEAD_DEBUG=1 to see the traceback)"
            )
            raise typer.Exit(1) from None

    return wrapper
