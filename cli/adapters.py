"""``xnorm adapters``: the adapter zoo (shipped adapters and those trained into $XNORM_HOME/adapters)."""
from __future__ import annotations

import json

import click


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


@click.group("adapters")
def adapters() -> None:
    """Language, task and encoder adapters of the zoo."""


@adapters.command("list")
@click.option("--kind", type=click.Choice(["language-adapter", "task-adapter", "encoder-adapter", "reranker",
                                           "distilled-encoder"]), help="Only adapters of this kind.")
@click.option("--verify", is_flag=True, help="Also check every file's sha256 (broken folders are reported).")
@click.option("--json", "as_json", is_flag=True, help="Print the list as JSON (manifests included).")
def list_cmd(kind: str | None, verify: bool, as_json: bool) -> None:
    """Name, kind, language, base model, size and origin (user / package) of every adapter."""
    from xnorm import zoo

    infos = zoo.list_adapters(kind, verify=verify)
    if as_json:
        click.echo(json.dumps([{"name": i.name, "kind": i.kind, "language": i.language, "base_model": i.base_model,
                                "origin": i.origin, "path": str(i.path), "size": i.size_bytes,
                                "manifest": i.manifest} for i in infos], indent=2, ensure_ascii=False))
        return
    if not infos:
        click.echo("no adapters (train one with `xnorm train-lang-adapter --lang L --text FILE --zoo`).")
        return
    table = [("NAME", "KIND", "LANG", "BASE MODEL", "PARAMS", "SIZE", "ORIGIN")]
    for i in infos:
        kind = f"{i.kind} (query)" if i.manifest.get("role") == "query" else i.kind  # encodes mentions only
        table.append((i.name, kind, i.language or "-", i.base_model,
                      "-" if i.n_params is None else f"{i.n_params / 1e3:.0f}k", _mb(i.size_bytes), i.origin))
    widths = [max(len(row[c]) for row in table) for c in range(len(table[0]))]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


@adapters.command("show")
@click.argument("name_or_path")
def show(name_or_path: str) -> None:
    """Print an adapter's manifest (checksums verified) and its folder."""
    from xnorm import zoo

    info = zoo.adapter_info(name_or_path, verify=True)
    click.echo(f"# {info.path} ({info.origin}; checksums ok)")
    click.echo(json.dumps(info.manifest, indent=2, ensure_ascii=False))


@adapters.command("add-reranker")
@click.argument("reranker_dir", type=click.Path(file_okay=False))
@click.argument("name")
def add_reranker(reranker_dir: str, name: str) -> None:
    """Put a reranker folder (`xnorm train-reranker -o DIR`) into $XNORM_HOME/adapters as NAME, so that
    `xnorm link --reranker NAME` and linker configs (`reranker: NAME`) find it.

    \b
    Example:
      xnorm adapters add-reranker hpo-reranker my-hpo-reranker
    """
    from xnorm import zoo

    path = zoo.add_reranker(reranker_dir, name)
    click.echo(f"added {name}: {path}")
