"""``xnorm calibrate-threshold``: choose a linker's NIL threshold on dev documents with gold ids."""
from __future__ import annotations

import json

import click

from .link import FORMATS, _make_linker, check_one_pipeline, reader_options


@click.command("calibrate-threshold")
@click.argument("dev_path", metavar="DEV")
@click.option("--index", "index_dir", type=click.Path(exists=True, file_okay=False),
              help="A saved candidate index (`xnorm index`).")
@click.option("--terminology", help="A saved terminology folder, a recipe file or a built-in recipe name.")
@click.option("--linker", "linker_dir", type=click.Path(exists=True, file_okay=False),
              help="A saved linker folder (`Linker.save`, or this command's -o).")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), help="A linker YAML config.")
@click.option("--reranker", "reranker_dir", help="Reranker folder or zoo name; `none`: no reranker [default: the "
              "linker's].")
@click.option("--lang", help="Language of every mention, or `auto` (as `xnorm link --lang`).")
@click.option("--format", "in_format", type=click.Choice(FORMATS), help="Input format [default: detected].")
@click.option("--target-precision", type=click.FloatRange(0, 1), default=None,
              help="The lowest threshold whose dev precision reaches this (the most recall at it) [default: the "
                   "threshold that maximises F1].")
@click.option("-o", "--output", "out_dir", type=click.Path(file_okay=False),
              help="Save the linker with this threshold here (index, reranker and config in one folder: "
                   "`xnorm link --linker DIR`).")
@click.option("--json", "as_json", is_flag=True, help="Print the choice as JSON.")
def calibrate_threshold(dev_path, index_dir, terminology, linker_dir, config_path, reranker_dir, lang, in_format,
                        target_precision, out_dir, as_json):
    """Choose the NIL threshold of a linker on DEV: documents whose entities carry gold ids in `normalized`.

    A mention is linked when its top score is at least the threshold. An entity with no gold id, or only ids the
    terminology lacks, should stay unlinked (NIL). The mentions are read as `xnorm link` reads them (language,
    context, abbreviations), with the same pipeline options. Prints the threshold and the dev set's precision,
    recall and F1 at it; pass it to `xnorm link --threshold`, or save the linker with it (-o).

    \b
    Examples:
      xnorm calibrate-threshold dev.bigbio.jsonl
      xnorm calibrate-threshold dev.bigbio.jsonl --target-precision 0.9 -o my-linker
      xnorm link notes.jsonl -o linked.jsonl --linker my-linker
    """
    from xnorm.data import detect_format, gold_ids, read_documents
    from xnorm.errors import InputError

    check_one_pipeline(index_dir, terminology, linker_dir, config_path)
    fmt = in_format or detect_format(dev_path)  # the input is checked before the (slower) linker is built
    docs = list(read_documents(dev_path, format=fmt, **reader_options(fmt, lang)))
    linker = _make_linker(index_dir, terminology, linker_dir, config_path, None)
    if reranker_dir:
        linker.set_reranker(reranker_dir)
    mentions, refs = linker.mentions(docs, lang)
    gold = gold_ids(docs, refs)
    if not any(gold):
        raise InputError("no entity carries a gold id in `normalized`, so no threshold can be chosen.",
                         file=dev_path, field="normalized",
                         fix="give dev documents whose entities are annotated with the terminology's ids.")
    choice = linker.calibrate_threshold(mentions, gold, target_precision=target_precision)
    if out_dir:
        linker.save(out_dir)
    if as_json:
        click.echo(json.dumps({**choice.__dict__, "pipeline": linker.pipeline, "saved": out_dir}, indent=2))
        return
    click.echo(f"pipeline: {linker.pipeline}")
    click.echo(f"threshold {choice.threshold:.6g}: precision {choice.precision:.3f}, recall {choice.recall:.3f}, "
               f"F1 {choice.f1:.3f} on {choice.mentions} dev mentions ({choice.with_gold} with a gold id in the "
               f"terminology; {choice.linked} linked)")
    if out_dir:
        click.echo(f"saved the linker with it to {out_dir}: xnorm link INPUT -o OUTPUT --linker {out_dir}")
    else:
        click.echo(f"use it: xnorm link INPUT -o OUTPUT --threshold {choice.threshold:.6g} (same pipeline options)")
