"""``xnorm evaluate``: score linked documents against gold documents (mention and entity level)."""
from __future__ import annotations

import click


def _parse_ks(ctx, param, value: str | None):
    if value is None:
        return None
    try:
        ks = sorted({int(x) for x in value.split(",") if x.strip()})
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers, e.g. 1,5,10,64.") from None
    if not ks or ks[0] < 1:
        raise click.BadParameter("give cut-offs >= 1, e.g. 1,5,10,64.")
    return ks


@click.command("evaluate")
@click.argument("pred", type=click.Path(exists=True))  # a folder: partitioned output (--engine ray) or brat
@click.argument("gold", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print every figure as JSON instead of tables.")
@click.option("--k", "ks", callback=_parse_ks, metavar="K,K,...",
              help="recall@k cut-offs [default: 1,2,4,5,8,10,16,32,64].")
@click.option("--per", multiple=True, metavar="KEY",
              help="Also report mention-level metrics per group: lang, type, or any gold entity/document field "
                   "(repeatable).")
@click.option("--ci", is_flag=True, help="Add bootstrap confidence intervals (seeded).")
@click.option("--resamples", type=click.IntRange(10), default=1000, show_default=True,
              help="Bootstrap / randomization resamples.")
@click.option("--confidence", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.95,
              show_default=True, help="Confidence level of --ci intervals.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of all resampling.")
@click.option("--baseline", type=click.Path(exists=True, dir_okay=False),
              help="A second run over the same GOLD: adds a paired significance test (accuracy@1, MRR).")
@click.option("--test", type=click.Choice(["bootstrap", "randomization"]), default="bootstrap", show_default=True,
              help="Paired test used with --baseline.")
@click.option("--typed", is_flag=True, help="Entity level strict/partial also require the same entity type.")
@click.option("--aliases", type=click.Path(exists=True),
              help="Id aliases applied to both sides: a saved terminology folder (alt_id/replaced_by) or a "
                   "TSV `old_id<TAB>current_id`.")
@click.option("--hierarchy", "hierarchy", metavar="TERMINOLOGY",
              help="Also score near-misses: top answers an is_a level finer or coarser than the gold (lenient@1). "
                   "A terminology with is_a edges: saved folder, recipe file or built-in name (hpo-en); its id "
                   "aliases apply too.")
@click.option("--is-a-levels", type=click.IntRange(0), default=1, show_default=True,
              help="With --hierarchy: how many is_a levels away still count (0: any number).")
@click.option("--allow-missing", is_flag=True,
              help="Tolerate documents present in only one file: gold-only documents count as misses, "
                   "prediction-only documents are ignored.")
@click.option("--pred-field", default="normalized", show_default=True,
              help="Entity field of PRED that holds the ranked predictions (`xnorm link --field`).")
@click.option("--gold-field", default="normalized", show_default=True,
              help="Entity field of GOLD that holds the gold ids.")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Also write the JSON result to this file.")
def evaluate(pred, gold, as_json, ks, per, ci, resamples, confidence, seed, baseline, test, typed, aliases,
             hierarchy, is_a_levels, allow_missing, pred_field, gold_field, output):
    """Score PRED (what `xnorm link --top-k K` writes) against GOLD (the same documents with gold ids).

    Both are BigBIO kb documents; an entity's `normalized` list holds its ids ({db_name, db_id}), ranked
    best first in PRED. Mention level: accuracy@1, recall@k, MRR over gold entities matched by document id +
    entity id. Entity level: strict / partial / loose precision, recall and F1 (micro and macro over
    documents) of the top-1 prediction. Ids are compared after stripping a leading `<db_name>:` from db_id.

    \b
    Examples:
      xnorm evaluate linked.jsonl gold.jsonl
      xnorm evaluate linked.jsonl gold.jsonl --k 1,5,10,64 --per lang --ci
      xnorm evaluate new.jsonl gold.jsonl --baseline old.jsonl --json -o scores.json
      xnorm evaluate linked.jsonl gold.jsonl --hierarchy hpo-en
    """
    import json

    from xnorm._io import atomic_write
    from xnorm.eval.documents import evaluate_files
    from xnorm.eval.ranking import DEFAULT_KS
    from xnorm.eval.report import format_report

    result = evaluate_files(
        pred, gold, baseline_path=baseline, aliases_path=aliases, hierarchy_spec=hierarchy,
        is_a_levels=is_a_levels or None, ks=ks or DEFAULT_KS, per=per, ci=ci,
        n_resamples=resamples, confidence=confidence, seed=seed, match_types=typed, allow_missing=allow_missing,
        test=test, pred_field=pred_field, gold_field=gold_field,
    )
    text = json.dumps(result, indent=2, ensure_ascii=False)
    if output:
        with atomic_write(output) as f:
            f.write(text + "\n")
    click.echo(text if as_json else format_report(result))
