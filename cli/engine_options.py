"""``--engine / --address / --workers``: the Ray engine options that `xnorm link` and `xnorm index` share."""
from __future__ import annotations

from typing import Callable

import click


def engine_options(engine_help: str, workers_of: str) -> Callable:
    """Decorator adding the three options; ``engine_help`` says what ``--engine ray`` does for this command,
    ``workers_of`` what each worker runs (e.g. "linker")."""
    options = [
        click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
                     help=engine_help),
        click.option("--address", help="--engine ray: an existing Ray cluster (HOST:6379, ray://HOST:10001 or "
                     "auto) [default: start a local one]."),
        click.option("--workers", type=click.IntRange(1), default=1, show_default=True,
                     help=f"--engine ray: number of {workers_of} workers (one GPU each when the cluster has GPUs)."),
    ]

    def decorate(f: Callable) -> Callable:
        for option in reversed(options):  # click lists options in the order the decorators are written
            f = option(f)
        return f

    return decorate
