"""Options that several commands share, defined once."""

from __future__ import annotations

from collections.abc import Callable

import click


def run_state_options(checkpoint_every: int) -> Callable:
    """``--checkpoint-every`` (default ``checkpoint_every``), ``--resume`` and ``--overwrite``: how a
    training command saves its state and starts again."""
    options = (
        click.option(
            "--checkpoint-every",
            default=checkpoint_every,
            show_default=True,
            help="Also checkpoint every N batches (0: epoch ends).",
        ),
        click.option("--resume", is_flag=True, help="Continue an interrupted run in --out from its last checkpoint."),
        click.option("--overwrite", is_flag=True, help="Discard an earlier run in --out and start again."),
    )

    def apply(command: Callable) -> Callable:
        for option in reversed(options):
            command = option(command)
        return command

    return apply
