"""The ``fairlead`` command: one Typer app, one module per command group."""

from __future__ import annotations

import typer

from service.cli import (
    allocate_cmd,
    demo_cmd,
    frontier_cmd,
    keys_cmd,
    lifecycle_cmd,
    report_cmd,
    serve_cmd,
    simulate_cmd,
    train_cmd,
)

app = typer.Typer(
    name="fairlead",
    help="Optimal, explained distribution of sales leads to channel partners.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _module in (
    demo_cmd,
    simulate_cmd,
    train_cmd,
    allocate_cmd,
    frontier_cmd,
    report_cmd,
    serve_cmd,
    keys_cmd,
    lifecycle_cmd,
):
    _module.register(app)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
