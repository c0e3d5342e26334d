"""``xnorm`` entry point: the Click group, and one place that turns user errors into one line + exit code."""
from __future__ import annotations

import importlib
import logging
import os
import sys

import click

from xnorm import __version__
from xnorm.errors import EXIT_INTERRUPTED, XnormError

# Subcommands live in their own modules (cli/<module>.py, each exposing a click command or group).
COMMANDS = {
    "terminology": ("terminology", "terminology"),
    "models": ("models", "models"),
    "index": ("index", "index"),
    "link": ("link", "link"),
    "train-reranker": ("train_reranker", "train_reranker"),
    "calibrate-reranker": ("calibrate_reranker", "calibrate_reranker"),
    "calibrate-threshold": ("calibrate_threshold", "calibrate_threshold"),
    "evaluate": ("evaluate", "evaluate"),
    "benchmark": ("benchmark", "benchmark"),
    "train-encoder": ("train_encoder", "train_encoder"),
    "adapters": ("adapters", "adapters"),
    "train-lang-adapter": ("train_lang_adapter", "train_lang_adapter"),
}


class LazyGroup(click.Group):
    """Imports a subcommand's module only when it runs, so `xnorm --help` stays fast (no torch import)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str):
        if name not in COMMANDS:
            return None
        module, attr = COMMANDS[name]
        return getattr(importlib.import_module(f"xnorm.cli.{module}"), attr)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="xnorm")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
def cli(verbose: int) -> None:
    """Map medical entity mentions, in any language, to terminology concept ids.

    Exit codes: 0 ok, 1 internal error (a bug: please report it), 2 usage error, 3 bad input
    (the message names the file, line or field and the fix), 130 interrupted.
    """
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), format="%(levelname)s %(name)s: %(message)s")


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        cli.main(args=argv, prog_name="xnorm", standalone_mode=False)
    except XnormError as e:
        click.echo(f"xnorm: error: {e}", err=True)
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("xnorm: interrupted; no output was written.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except KeyboardInterrupt:
        click.echo("xnorm: interrupted; no output was written.", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    sys.exit(0)


if __name__ == "__main__":
    main()
