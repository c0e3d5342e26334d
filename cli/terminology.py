"""``xnorm terminology``: build a terminology from a recipe, describe one, list the built-in recipes."""
from __future__ import annotations

import json
import time
from pathlib import Path

import click


def _fmt_counts(counts: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in counts.items()) or "-"


def _print_info(info: dict) -> None:
    """The human-readable form of ``Terminology.info()``."""
    meta = info.get("metadata", {})
    if meta.get("name"):
        click.echo(f"name: {meta['name']}")
    if meta.get("description"):
        click.echo(f"description: {meta['description']}")
    click.echo(f"concepts: {info['concepts']}")
    click.echo(f"names: {info['names']}")
    click.echo(f"aliases: {info['aliases']}")
    edges = f"is_a edges: {info.get('is_a_edges', 0)}"
    if meta.get("dropped_is_a_edges"):
        edges += f" ({meta['dropped_is_a_edges']} dropped: they name a concept the sources do not define)"
    click.echo(edges)
    npc = info["names_per_concept"]
    click.echo(f"names per concept: mean={npc['mean']:.2f} median={npc['median']:g} max={npc['max']} "
               f"concepts_without_names={npc['concepts_without_names']}")
    click.echo(f"names per language: {_fmt_counts(info['names_per_language'])}")
    click.echo(f"concepts per language: {_fmt_counts(info['concepts_per_language'])}")
    click.echo(f"names per type: {_fmt_counts(info['names_per_type'])}")
    click.echo("names per provenance:")
    for prov, n in info["names_per_provenance"].items():
        click.echo(f"  {prov}: {n}")
    dropped = meta.get("dropped_names") or {}
    click.echo(f"dropped names: {sum(dropped.values())}")
    for why, n in dropped.items():
        click.echo(f"  {why}: {n}")
    if meta.get("filtered_names"):
        click.echo(f"filtered names (recipe languages / name_types): {meta['filtered_names']}")


@click.group("terminology")
def terminology() -> None:
    """Build terminologies from recipes (HPO, UMLS, custom TSV/JSONL) and inspect them."""


@terminology.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print name, file and description as JSON.")
def list_cmd(as_json: bool) -> None:
    """The built-in recipes (give their name wherever a terminology is expected)."""
    import yaml

    from xnorm.terminology import DEFAULT_RECIPE, builtin_recipes

    rows = []
    for name, path in builtin_recipes().items():
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        rows.append({"name": name, "path": str(path), "description": str(data.get("description", "")).strip(),
                     "default": name == DEFAULT_RECIPE})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    width = max(len(r["name"]) for r in rows) + 2
    for r in rows:
        click.echo(f"{r['name'] + (' *' if r['default'] else ''):<{width + 2}}{r['description']}")
    click.echo(f"(* the default terminology; recipe files: {Path(rows[0]['path']).parent})")


@terminology.command("build")
@click.argument("recipe")
@click.option("-o", "--output", "output", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write the terminology to (replaced atomically if it holds an older one).")
def build(recipe: str, output: Path) -> None:
    """Build RECIPE (a .yaml file or a built-in name such as hpo-en) and save it to OUTPUT."""
    from xnorm.errors import ArtifactError
    from xnorm.terminology.recipe import build_recipe, read_recipe

    # Never replace a folder that is not a saved terminology (e.g. `-o .`): atomic_dir would swap it away.
    if output.exists() and any(output.iterdir()) and not (output / "manifest.json").is_file():
        raise ArtifactError("the output folder exists and is not a saved terminology; refusing to replace it.",
                            file=str(output), fix="give a new folder, or an old `xnorm terminology build` output.")
    spec = read_recipe(recipe)
    click.echo(f"building {spec.name} from {spec.path}")
    t0 = time.perf_counter()

    def progress(src, path, counts) -> None:
        click.echo(f"  [{src.type}] {path.name}: {_fmt_counts(counts)}")

    term = build_recipe(spec, progress=progress)
    term.save(output)
    click.echo(f"built in {time.perf_counter() - t0:.1f} s -> {output}")
    _print_info(term.info())


@terminology.command("info")
@click.argument("spec")
@click.option("--json", "as_json", is_flag=True, help="Print the counts as JSON.")
def info(spec: str, as_json: bool) -> None:
    """Counts of a terminology: SPEC is a saved folder, a recipe file or a built-in recipe name (built and cached)."""
    from xnorm.terminology import load_terminology

    summary = load_terminology(spec).info()
    if as_json:
        click.echo(json.dumps(summary, indent=2, ensure_ascii=False))
    else:
        _print_info(summary)
