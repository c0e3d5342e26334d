"""``xnorm benchmark``: run a benchmark config (datasets x pipelines) and write results.json, results.md, plots."""
from __future__ import annotations

import click


@click.command("benchmark")
@click.argument("config", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "output", type=click.Path(file_okay=False),
              help="Results folder [default: benchmarks/results/<date>-<config name>/].")
@click.option("--resume", is_flag=True, help="Continue a results folder: runs already in its results.json are "
              "skipped (a run whose dataset options or pipeline changed is rerun).")
@click.option("--data-root", type=click.Path(file_okay=False),
              help="Folder holding the open data (hpo-translations/, hpo-corpora/, ...) [default: the config's "
                   "data_root, else $XNORM_DATA, else ../shared/data].")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
def benchmark(config, output, resume, data_root, no_progress):
    """Run every (dataset, pipeline) run of CONFIG, timed and scored, saving each run as it ends.

    \b
    Examples:
      xnorm benchmark benchmarks/configs/smoke.yaml
      xnorm benchmark benchmarks/configs/hpo-labels.yaml -o benchmarks/results/hpo --resume
    """
    from xnorm.benchmark.config import load_config
    from xnorm.benchmark.runner import run_benchmark

    cfg = load_config(config)
    if data_root:
        cfg.data_root = data_root
    out = run_benchmark(cfg, output, resume=resume, show_progress=not no_progress, echo=click.echo)
    click.echo(f"results: {out / 'results.json'}, {out / 'results.md'}")
