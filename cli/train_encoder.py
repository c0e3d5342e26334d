"""``xnorm train-encoder``: self-align an encoder on a terminology's synonyms and translations (SapBERT-style)."""
from __future__ import annotations

import click

from xnorm.models.encoder import AUTOCAST_PRECISIONS  # light: no torch at import (as cli/link.py)


def _languages(value: str | None) -> list[str] | None:
    if value is None:
        return None
    langs = [x.strip() for x in value.split(",") if x.strip()]
    return langs or None


@click.command("train-encoder")
@click.option("--terminology", "terminology_spec", required=True, metavar="DIR_OR_RECIPE",
              help="A saved terminology folder, a recipe YAML file or a built-in recipe name (e.g. hpo-multilingual).")
@click.option("--base", "base_model", default="multilingual-e5-small", show_default=True, metavar="MODEL",
              help="Encoder to start from: a name from `xnorm models list`, a Hugging Face folder or hub id, or an "
              "encoder adapter (zoo name or folder), whose training then goes on.")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), metavar="OUT_DIR",
              help="Folder to write: adapter folder (adapter mode) or Hugging Face model folder (full mode).")
@click.option("--mode", type=click.Choice(["adapter", "full"]), default="adapter", show_default=True,
              help="Train a small adapter on the frozen encoder, or all weights but the word embeddings.")
@click.option("--adapter-type", type=click.Choice(["seq_bn", "lora"]), default="seq_bn", show_default=True,
              help="Adapter mode: bottleneck adapter or LoRA.")
@click.option("--loss", type=click.Choice(["ms", "infonce"]), default="ms", show_default=True,
              help="Multi-similarity loss with hard-pair mining (SapBERT) or symmetric in-batch InfoNCE.")
@click.option("--languages", metavar="en,es,...", help="Languages whose names are trained on [default: all].")
@click.option("--exclude-concepts", type=click.Path(dir_okay=False), metavar="FILE",
              help="Concept ids (one per line, or a split.json's test ids) kept out of training, e.g. a "
              "benchmark's test concepts.")
@click.option("--dev-fraction", type=float, default=0.05, show_default=True,
              help="Share of concepts held out for early stopping (split by concept, seeded).")
@click.option("--test-fraction", type=float, default=0.1, show_default=True,
              help="Share of concepts held out as test concepts (never trained on; listed in split.json).")
@click.option("--steps", type=int, default=1000, show_default=True, help="Optimizer steps.")
@click.option("--batch-size", type=int, default=128, show_default=True,
              help="Names per batch (--names-per-concept names of each concept).")
@click.option("--names-per-concept", type=click.IntRange(2), default=2, show_default=True,
              help="Names drawn per concept in a batch: an English name and N-1 synonyms or translations.")
@click.option("--lr", type=float, help="Learning rate [default: 1e-4 adapter, 2e-5 full].")
@click.option("--hard-negatives", type=click.IntRange(0, 10), default=0, show_default=True,
              help="Batches of similar concepts: each concept brings this many of its 10 nearest (by the starting "
              "encoder), so in-batch negatives are hard ones; 0: random batches.")
@click.option("--grad-accum", type=int, default=1, show_default=True, help="Batches per optimizer step.")
@click.option("--max-length", type=int, default=24, show_default=True, help="Tokens per name in training.")
@click.option("--dev-every", type=int, default=200, show_default=True, help="Steps between dev evaluations.")
@click.option("--patience", type=int, default=3, show_default=True,
              help="Stop after this many dev evaluations without a better recall@1 (0: never).")
@click.option("--threads", type=int, help="CPU threads for torch [default: torch's choice].")
@click.option("--precision", type=click.Choice(AUTOCAST_PRECISIONS), default="auto", show_default=True,
              help="The forward pass: bf16 autocast (trained weights stay fp32), auto (bf16 where the CPU/GPU "
              "computes it natively), or fp32.")
@click.option("--resume", is_flag=True, help="Continue the run in OUT_DIR from its last checkpoint (same settings; --steps, "
              "--dev-every and --patience may change).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split, batches and init.")
@click.option("--batch-seed", type=int, help="Seed of the batches and init alone: another run over the same split "
              "[default: --seed].")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar.")
def train_encoder(terminology_spec, base_model, output, mode, adapter_type, loss, languages, exclude_concepts,
                  dev_fraction, test_fraction, steps, batch_size, names_per_concept, lr, hard_negatives, grad_accum, max_length,
                  dev_every, patience, threads, precision, resume, seed, batch_seed, progress):
    """Train an encoder so that a concept's names in every language lie close together.

    Positive pairs are two names of one concept (English name and a synonym or translation); the split into
    train / dev / test concepts is written to OUT_DIR/split.json. Early stopping watches dev recall@1.
    `xnorm index` accepts OUT_DIR as an encoder (`model: OUT_DIR` in a dense generator's config).

    \b
    Examples:
      xnorm train-encoder --terminology hpo-multilingual --languages en,es,fr,de -o hpo-align --steps 400
      xnorm train-encoder --terminology hpo-multilingual -o hpo-align --steps 800 --resume
      xnorm train-encoder --terminology hpo-multilingual --base hpo-align-e5small --hard-negatives 3 \
          --exclude-concepts my-test-concepts.txt -o hpo-align-hard --steps 800
    """
    from xnorm.errors import ConfigError
    from xnorm.terminology import load_terminology
    from xnorm.training.encoder_trainer import train_encoder as train
    from xnorm.training.pairs import read_concept_list

    langs = _languages(languages)
    exclude = read_concept_list(exclude_concepts) if exclude_concepts else []
    terminology = load_terminology(terminology_spec)
    if langs is not None:
        unknown = sorted(set(langs) - set(terminology.languages))
        if unknown:
            raise ConfigError(f"languages {unknown} have no names in terminology {terminology_spec!r}.",
                              field="--languages", fix=f"use some of {','.join(terminology.languages)}.")
    click.echo(f"terminology: {len(terminology):,} concepts, {terminology.n_names:,} names", err=True)
    result = train(terminology, base_model, output, mode=mode, loss=loss, languages=langs, exclude_concepts=exclude,
                   resume=resume, progress=progress, steps=steps, batch_size=batch_size,
                   names_per_concept=names_per_concept, lr=lr,
                   hard_negatives=hard_negatives, grad_accum=grad_accum, max_length=max_length, dev_every=dev_every, patience=patience,
                   threads=threads, precision=precision, seed=seed, batch_seed=batch_seed, adapter_type=adapter_type, dev_fraction=dev_fraction,
                   test_fraction=test_fraction)
    m = result.manifest
    dev = m.get("dev") or {}
    click.echo(f"wrote {result.output_dir} ({m['kind']}, {m['steps']} steps, {m['training_seconds']} s; "
               f"dev recall@1 {dev.get('recall@1_base')} -> {dev.get('recall@1_best')})")
