"""``xnorm calibrate-reranker``: choose a trained reranker's generator weight per language on dev sets."""
from __future__ import annotations

import click


@click.command("calibrate-reranker")
@click.argument("reranker_dir", type=click.Path(exists=True, file_okay=False))
@click.option("--index", "index_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="The candidate index the reranker reranks at link time (its top-k candidates are calibrated on).")
@click.option("--dev", "dev_specs", multiple=True, required=True, metavar="DOCS|synonyms[:LANGS]",
              help="Dev set with gold ids (repeatable; the default weight is the one whose worst acc@1 gain over "
                   "the candidates, across the dev sets, is best).")
@click.option("--k", type=click.IntRange(2), help="Candidates per mention [default: the k it was trained with].")
@click.option("--min-per-language", type=click.IntRange(1), default=None,
              help="Dev mentions a language needs for a weight of its own [default: 100].")
@click.option("--max-dev", type=click.IntRange(1), help="Use at most this many mentions of each dev set (seeded).")
@click.option("--lang", help="Language of documents whose format has none (brat, PubTator).")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the dev samples.")
@click.option("--threads", type=click.IntRange(1), default=2, show_default=True, help="CPU threads.")
def calibrate_reranker(reranker_dir, index_dir, dev_specs, k, min_per_language, max_dev, lang, seed, threads):
    """Calibrate how much of the candidate generator's ranking RERANKER_DIR keeps, per language, on dev sets.

    Reranked scores are softmax(s + w·g): s the reranker's logits, g the generator's scores min-max normalised
    over the mention's candidates, w the generator weight of the mention's language (0: the reranker alone).
    `xnorm train-reranker --dev` calibrates at the end of training; this command (re)calibrates a saved folder,
    e.g. one trained elsewhere, on other dev data. Only the folder's manifest is rewritten.

    \b
    Examples:
      xnorm calibrate-reranker hpo-reranker --index hpo-index --dev dev_notes.jsonl --dev dev_labels.jsonl
    """
    import torch

    from xnorm.candidates import CandidateIndex
    from xnorm.errors import ConfigError
    from xnorm.rerank import Reranker
    from xnorm.rerank.calibrate import MIN_PER_LANGUAGE, calibrate_generator_weight
    from xnorm.rerank.feature_ranker import is_feature_reranker
    from xnorm.rerank.model import update_manifest
    from xnorm.rerank.supervision import candidates_for, load_examples

    if is_feature_reranker(reranker_dir):
        raise ConfigError("a feature reranker has no generator weight: its scores already weigh the generators' "
                          "(learnt in training).", file=reranker_dir,
                          fix="retrain it with `xnorm train-reranker --mode features --dev FILE` to choose its L2 "
                              "on other dev data.")
    torch.set_num_threads(threads)
    index = CandidateIndex.load(index_dir)
    reranker = Reranker.load(reranker_dir)
    if reranker.cross_encoder is not None:
        raise ConfigError("a CrossEncoder folder has no xnorm manifest to keep the generator weight in.",
                          file=reranker_dir, fix="calibrate a reranker trained by `xnorm train-reranker`.")
    k = k or int(reranker.info.get("k") or 16)
    dev = {}
    for spec in dev_specs:
        ex = load_examples(spec, index.terminology, max_examples=max_dev, seed=seed, lang=lang)
        dev[spec] = (ex, candidates_for(index, ex, k))
    gw = calibrate_generator_weight(reranker, dev, index.terminology,
                                    min_per_language=min_per_language or MIN_PER_LANGUAGE)
    update_manifest(reranker_dir, generator_weight=gw)
    click.echo(f"{'dev set / language':<28} {'n':>6} {'candidates':>10} {'reranker':>9} {'chosen':>7}  weight")
    for name, row in gw["dev"]["sets"].items():
        click.echo(f"{name[-28:]:<28} {row['n']:>6} {row['candidates']:>10.3f} {row['reranker']:>9.3f} "
                   f"{row['chosen']:>7.3f}  {gw['default']:g} (default)")
    for lang, row in gw["dev"]["languages"].items():
        click.echo(f"{lang:<28} {row['n']:>6} {row['candidates']:>10.3f} {row['reranker']:>9.3f} "
                   f"{row['chosen']:>7.3f}  {gw['languages'][lang]:g}")
    click.echo(f"wrote the generator weight into {reranker_dir}/manifest.json (k = {k})")
