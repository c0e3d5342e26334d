"""``xnorm train-reranker``: train a reranker — a cross-encoder (task adapter, Stack(lang, task) or full
fine-tuning) or the feature reranker (``--mode features``)."""
from __future__ import annotations

import click

from xnorm.rerank.model import DEFAULT_PRECISION, PRECISIONS  # light: no torch at import (as cli/link.py)


def _lang_adapter(ctx, param, values):
    out = {}
    for v in values:
        lang, sep, path = v.partition("=")
        if not sep or not lang or not path:
            raise click.BadParameter(f"{v!r}: write LANG=FOLDER (e.g. en=adapters_zoo/lang-en-e5small).")
        out[lang] = path
    return out


@click.command("train-reranker")
@click.option("--index", "index_dir", required=True, type=click.Path(exists=True, file_okay=False),
              help="A saved candidate index (`xnorm index`); its top-k candidates are reranked.")
@click.option("--train", "train_spec", required=True, metavar="DOCS|synonyms[:LANGS]",
              help="Annotated documents (BigBIO kb JSONL, brat, PubTator, HF dataset) with gold ids, or "
                   "`synonyms` / `synonyms:es,fr` for weak supervision from the terminology's own names.")
@click.option("--dev", "dev_specs", multiple=True, metavar="DOCS|synonyms[:LANGS]",
              help="Dev set for early stopping (repeatable: the weights kept are those whose worst acc@1 gain over "
                   "the candidates, across the dev sets, is best — e.g. bare labels and mentions in context).")
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="Reranker folder to write.")
@click.option("--mode", type=click.Choice(["adapter", "stack", "full", "features"]), default="adapter",
              show_default=True,
              help="adapter: task adapter on the frozen base; stack: Stack(lang, task) with --lang-adapter; "
                   "full: fine-tune every layer (comparison point); features: a linear ranker over generator scores, "
                   "name overlap, hierarchy and a memory of the training annotations (seconds on CPU, no model).")
@click.option("--l2", type=click.FloatRange(0, min_open=True),
              help="--mode features: L2 weight [default: with --dev the best pair (shared, in-domain weights) "
                   "of 0.001-1; without, one chosen by 5-fold cross-validation over the training documents].")
@click.option("--refit", is_flag=True,
              help="--mode features with --dev: once the dev sets chose the L2, train again on the training and dev "
                   "mentions together with it (a small annotated corpus then lends every annotation to the memory).")
@click.option("--no-memory", is_flag=True,
              help="--mode features: remember no training annotations (no concept prior, no exact-mention memory), "
                   "for a ranker meant for other corpora than its training one.")
@click.option("--translations", "translations_spec", metavar="DIR_OR_RECIPE",
              help="--mode features: learn word-piece translation tables (IBM Model 1) from this terminology's "
                   "names in other languages than English, paired with their concepts' English names (e.g. "
                   "hpo-multilingual); how well a mention and a candidate's English names translate each other "
                   "becomes a feature. Names of the training and dev mentions' concepts in their language are "
                   "left out.")
@click.option("--exclude-concepts", type=click.Path(dir_okay=False), metavar="FILE",
              help="--translations: also leave out these concepts' names (one id per line, or a split.json's test "
                   "ids), e.g. a benchmark's test concepts.")
@click.option("--tokenizer", default="multilingual-e5-small", show_default=True,
              help="--translations: the subword tokenizer (model name or folder) that splits names into pieces.")
@click.option("--lambda", "lam", type=click.FloatRange(0), default=1.0, show_default=True,
              help="Weight of the rank regularizer ||p - q||_2 (0 = plain cross-entropy).")
@click.option("--k", type=click.IntRange(2), default=16, show_default=True, help="Candidates per mention.")
@click.option("--base-model", default="multilingual-e5-small", show_default=True,
              help="Base model: registry name, Hugging Face folder, or an encoder adapter (e.g. hpo-align-e5small; "
              "it runs frozen under the task adapter, mode adapter only).")
@click.option("--steps", type=click.IntRange(1), help="Training steps [default: --epochs over the data].")
@click.option("--epochs", type=click.FloatRange(0, min_open=True), default=1.0, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=8, show_default=True, help="Mentions per step.")
@click.option("--lr", type=float, help="Learning rate [default: 1e-3 adapters, 3e-5 full].")
@click.option("--max-length", type=click.IntRange(8, 512), default=48, show_default=True,
              help="Tokens per (mention, candidate) pair.")
@click.option("--context-chars", type=click.IntRange(0), default=0, show_default=True,
              help="Characters of the mention's context each side in a pair (0: the mention alone; context did not "
                   "help at the scale trained here, see the README).")
@click.option("--parents", is_flag=True,
              help="Describe each candidate with its is_a parents too (`name < parent`), so the reranker sees how "
                   "general it is; needs a terminology with a hierarchy, at inference too.")
@click.option("--lang-adapter", "lang_adapters", multiple=True, callback=_lang_adapter, metavar="LANG=FOLDER",
              help="Language adapter (repeatable). With --mode stack, the one of the training language "
                   "(--source-lang) is stacked under the task adapter in training; all are used at inference.")
@click.option("--source-lang", default="en", show_default=True, help="Training language (--mode stack).")
@click.option("--max-train", type=click.IntRange(1), help="Use at most this many training mentions (seeded sample).")
@click.option("--missing-gold", type=click.Choice(["insert", "skip"]), default="skip", show_default=True,
              help="Gold not among the k candidates: skip the mention, or put the gold in the last slot.")
@click.option("--pooling", type=click.Choice(["segments", "mean", "cls"]), default="segments", show_default=True,
              help="What the scoring head reads: the pair's mean token state, or the mention's and the candidate's "
                   "tokens pooled apart and compared (segments).")
@click.option("--no-prior", is_flag=True, help="Plain cross-encoder score, without the generator-score prior.")
@click.option("--eval-every", type=click.IntRange(1), default=50, show_default=True, help="Steps between dev evals.")
@click.option("--patience", type=click.IntRange(1), default=3, show_default=True,
              help="Dev evals without improvement before stopping.")
@click.option("--max-seconds", type=float, help="Stop training after this much time (best weights kept).")
@click.option("--teacher", type=click.Path(exists=True, file_okay=False),
              help="A trained reranker folder (e.g. a GPU full fine-tune) whose output distribution over the same "
                   "candidates this one also learns to match (distillation).")
@click.option("--teacher-weight", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Share of the loss that matches the teacher (the rest: the rank-regularized loss).")
@click.option("--lang", help="Language of documents whose format has none (brat, PubTator).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", help="cpu, cuda, ... [default: cuda when present].")
@click.option("--precision", type=click.Choice(PRECISIONS), default=DEFAULT_PRECISION, show_default=True,
              help="The base model's forward/backward pass: bf16 autocast (trained tensors stay fp32), fp32, or "
                   "auto (bf16 where the CPU/GPU computes it natively).")
@click.option("--threads", type=click.IntRange(1), default=2, show_default=True, help="CPU threads.")
def train_reranker(index_dir, train_spec, dev_specs, output, mode, l2, refit, no_memory, translations_spec,
                   exclude_concepts, tokenizer, lam, k, base_model, steps, epochs,
                   batch_size, lr, max_length, context_chars, parents, lang_adapters, source_lang, max_train,
                   missing_gold, pooling, no_prior, eval_every, patience, max_seconds, teacher, teacher_weight, lang,
                   seed, device, precision, threads):
    """Train a reranker over the top-k candidates of INDEX_DIR and save it to OUTPUT.

    The loss is softmax cross-entropy over the k candidates plus LAMBDA times the L2 distance between the
    reranker's distribution and the candidate generator's (min-max normalised, summing to one). With
    --mode features: softmax cross-entropy of a linear ranker over each candidate's features, plus --l2.

    \b
    Examples:
      xnorm train-reranker --index hpo-index --train gsc_train.jsonl --dev gsc_dev.jsonl -o hpo-reranker
      xnorm train-reranker --index hpo-index --train train.jsonl --dev notes_dev.jsonl --dev labels_dev.jsonl -o rr
      xnorm train-reranker --index hpo-index --train synonyms:en --k 8 --steps 200 -o hpo-reranker-weak
      xnorm train-reranker --index hpo-index --mode features --train gsc_train.jsonl --dev gsc_dev.jsonl -o hpo-fr
      xnorm train-reranker --index hpo-index --mode features --train ja_labels.jsonl \
          --translations hpo-multilingual -o hpo-fr-ja
      xnorm link notes.jsonl -o linked.jsonl --index hpo-index --reranker hpo-reranker
    """
    from xnorm.candidates import CandidateIndex
    from xnorm.errors import ConfigError
    from xnorm.rerank import train_reranker as train
    from xnorm.rerank.model import DEFAULT_PRIOR_WEIGHT
    from xnorm.rerank.supervision import load_examples

    if mode == "features":
        _check_unset(CROSS_ENCODER_ONLY, "the cross-encoder modes", "train a cross-encoder (--mode adapter/stack/full)")
        if not translations_spec:
            _check_unset(TRANSLATIONS_ONLY, "--translations", "pass --translations TERMINOLOGY")
        if refit and not dev_specs:
            raise click.UsageError("--refit refits with the L2 the dev sets choose: give --dev, or drop --refit.")
    else:
        _check_unset(FEATURES_ONLY + TRANSLATIONS_ONLY, "--mode features", "train with --mode features")
    index = CandidateIndex.load(index_dir)
    train_ex = load_examples(train_spec, index.terminology, max_examples=max_train, seed=seed, lang=lang)
    dev_ex = {spec: load_examples(spec, index.terminology, seed=seed, lang=lang) for spec in dev_specs} or None
    if mode == "features":
        translation = None
        if translations_spec:
            translation = _translations(translations_spec, exclude_concepts, tokenizer,
                                        [train_ex, *(dev_ex or {}).values()], index.terminology)
        _train_features(index, train_ex, dev_ex, output, k, l2, not no_memory, threads, translation, refit)
        return
    source = None
    if mode == "stack":
        if source_lang not in lang_adapters:
            raise ConfigError(f"--mode stack needs the adapter of the training language {source_lang!r}.",
                              field="--lang-adapter", fix=f"pass --lang-adapter {source_lang}=FOLDER.")
        source = (source_lang, lang_adapters[source_lang])
    click.echo(f"training on {len(train_ex):,} mentions ({train_ex.description}); k={k}, mode {mode}, "
               f"lambda {lam}", err=True)
    _, report = train(index, train_ex, output, mode=mode, lam=lam, k=k, base_model=base_model, dev=dev_ex,
                      steps=steps, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, eval_every=eval_every,
                      patience=patience, missing_gold=missing_gold, lang_adapter=source,
                      lang_adapters={x: p for x, p in lang_adapters.items() if x != source_lang or mode != "stack"},
                      pair_settings={"max_length": max_length, "context_chars": context_chars, "parents": parents},
                      prior_weight=None if no_prior else DEFAULT_PRIOR_WEIGHT, pooling=pooling,
                      device=device, precision=precision, threads=threads,
                      max_seconds=max_seconds, teacher=teacher, teacher_weight=teacher_weight)
    best = (f", best dev acc@1 {report['best_dev_acc1']:.4f} (worst-set gain {report['best_dev_gain']:+.4f}) at step "
            f"{report['best_step']}" if "best_dev_acc1" in report else "")
    click.echo(f"wrote {output}: {report['steps']} steps in {report['train_seconds']:.0f} s, "
               f"{report['parameters']['trained']:,} trained parameters{best}")


CROSS_ENCODER_ONLY = ("lam", "base_model", "steps", "epochs", "batch_size", "lr", "max_length", "context_chars",
                      "parents", "lang_adapters", "source_lang", "missing_gold", "pooling", "no_prior", "eval_every",
                      "patience", "max_seconds", "teacher", "teacher_weight", "device", "precision")
FEATURES_ONLY = ("l2", "refit", "no_memory", "translations_spec")
TRANSLATIONS_ONLY = ("exclude_concepts", "tokenizer")


def _check_unset(names, applies_to: str, fix: str) -> None:
    """An option given where it does nothing (a cross-encoder option with --mode features, a --translations option
    without it, ...) is a mistake, not a no-op."""
    from xnorm.errors import ConfigError

    ctx = click.get_current_context()
    given = [p for p in ctx.command.params if p.name in names
             and ctx.get_parameter_source(p.name) not in (click.core.ParameterSource.DEFAULT, None)]
    if given:
        flags = ", ".join(p.opts[0] for p in given)
        raise ConfigError(f"{flags} {'applies' if len(given) == 1 else 'apply'} to {applies_to} only.",
                          field=given[0].opts[0], fix=f"drop it, or {fix}.")


def _translations(spec, exclude_concepts, tokenizer, example_sets, terminology):
    """Translation tables from the terminology ``spec``, without the names of the concepts the training / dev
    mentions are annotated with in their language (those would hand the ranker its own answers), nor of
    ``exclude_concepts``."""
    from xnorm.candidates.base import mention_langs
    from xnorm.rerank import TranslationModel
    from xnorm.terminology import load_terminology
    from xnorm.training.pairs import read_concept_list

    ids = terminology.concept_ids
    exclude: set = set(read_concept_list(exclude_concepts)) if exclude_concepts else set()
    for ex in example_sets:
        known = ex.known()
        exclude |= {(lang, ids[g]) for lang, g in zip(mention_langs(known.mentions).tolist(), known.gold)}
    click.echo(f"learning translation tables from {spec} ...", err=True)
    model = TranslationModel.from_terminology(load_terminology(spec), exclude=exclude, tokenizer=tokenizer)
    pairs = ", ".join(f"{lang} {n:,}" for lang, n in model.info["pairs"].items())
    click.echo(f"translation tables: {pairs} name pairs", err=True)
    return model


def _train_features(index, train_ex, dev_ex, output, k, l2, memory, threads, translation=None,
                    refit: bool = False) -> None:
    import torch

    from xnorm.rerank import Examples, FeatureReranker

    torch.set_num_threads(threads)  # the index's encoder embeds the training mentions
    click.echo(f"training on {len(train_ex):,} mentions ({train_ex.description}); k={k}, mode features", err=True)
    ranker, report = FeatureReranker.train(index, train_ex, k=k, dev=dev_ex, l2=l2, memory=memory,
                                           translation=translation)
    if refit:
        full = Examples.concat([train_ex, *dev_ex.values()], f"{train_ex.description} + the dev sets")
        click.echo(f"refitting on {len(full):,} training + dev mentions with the chosen l2", err=True)
        chosen = (report["l2"]["shared"], report["l2"]["in_domain"])
        ranker, refitted = FeatureReranker.train(index, full, k=k, l2=chosen, memory=memory, translation=translation)
        report["trained_on"] = refitted["trained_on"]
        report["train_seconds"] += refitted["train_seconds"]
        ranker.info["training"]["l2_chosen_on"] = {key: report[key] for key in ("dev_candidates", "dev_chosen")}
    ranker.save(output)
    dev = "".join(f"; dev acc@1 {name} {report['dev_candidates'][name]:.4f} -> {acc:.4f}"
                  for name, acc in report["dev_chosen"].items())
    click.echo(f"wrote {output}: {report['trained_on']:,} mentions with the gold among {k} candidates, l2 "
               f"{report['l2']['shared']:g} (shared) / {report['l2']['in_domain']:g} (in domain), "
               f"{report['train_seconds']:.0f} s{dev}; reranks mentions in {','.join(ranker.languages)} (any other "
               f"language keeps its candidate order, scores softmax({ranker.fallback_scale:.3g} x fused score))")
