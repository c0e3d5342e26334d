"""``xnorm index``: build a candidate index (terminology + sparse / dense generators + config) as one folder."""
from __future__ import annotations

import click

from .engine_options import engine_options


def _human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


@click.command("index")
@click.option("--terminology", "terminology_spec", required=True, metavar="DIR_OR_RECIPE",
              help="A saved terminology folder, a recipe YAML file or a built-in recipe name (e.g. hpo-en).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), metavar="CONFIG.yaml",
              help="Candidate config: generators, routing, fusion, filters [default: sparse TF-IDF only].")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), metavar="INDEX_DIR",
              help="Folder to write (replaced atomically if it exists).")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show progress bars.")
@engine_options("ray: encode names in parallel shards on Ray workers and assemble the FAISS index (needs "
                "`pip install \"xnorm[ray]\"`); prints a memory estimate first.", workers_of="encoding")
@click.option("--shard-size", type=click.IntRange(1), default=16_384, show_default=True,
              help="--engine ray: names encoded per task.")
def index(terminology_spec, config_path, output, progress, engine, address, workers, shard_size):
    """Build a candidate index over a terminology and save it as INDEX_DIR.

    The folder holds the terminology, the fitted generators (TF-IDF vocabulary and name matrix, FAISS indexes
    with a reference to their encoder), the full config and a manifest with checksums; `xnorm link --index
    INDEX_DIR` and `CandidateIndex.load` use it. Example configs: benchmarks/configs/candidates/.

    \b
    Examples:
      xnorm index --terminology hpo-en -o hpo-sparse
      xnorm index --terminology hpo-en --config benchmarks/configs/candidates/fusion.yaml -o hpo-fusion
      xnorm index --terminology hpo-en --config fusion.yaml -o hpo-fusion --engine ray --workers 2
    """
    import time

    from xnorm.candidates import CandidateIndex
    from xnorm.candidates.config import normalize_config
    from xnorm.terminology import load_terminology

    config = normalize_config(config_path) if config_path else normalize_config(None)
    start = time.perf_counter()
    terminology = load_terminology(terminology_spec)
    loaded = time.perf_counter()
    click.echo(f"terminology: {len(terminology):,} concepts, {terminology.n_names:,} names, languages "
               f"{', '.join(terminology.languages)} ({loaded - start:.1f} s)", err=True)
    if engine != "ray" and (address or workers != 1):
        raise click.UsageError("--address and --workers apply to --engine ray.")
    if engine == "ray":
        from xnorm.engines.ray_engine import index_with_ray

        built = index_with_ray(terminology, config, output, address=address, num_workers=workers,
                               shard_size=shard_size, show_progress=progress, echo=lambda s: click.echo(s, err=True))
        path = output
    else:
        built = CandidateIndex.build(terminology, config, show_progress=progress)
        path = None
    click.echo(f"built: {built.describe()} ({built.build_seconds:.1f} s)", err=True)
    path = path or built.save(output)
    sizes = built.size_on_disk(path)
    parts = ", ".join(f"{k} {_human(v)}" for k, v in sorted(sizes.items()))
    click.echo(f"wrote {path} ({_human(sum(sizes.values()))}: {parts}) in {time.perf_counter() - start:.1f} s total")
