"""``xnorm link``: normalize the entity mentions of annotated documents (or of quick terms) to concept ids."""
from __future__ import annotations

import sys

import click

from xnorm.candidates.config import QUERY_PRECISION
from xnorm.models.encoder import PRECISIONS  # already imported by `xnorm` itself: no start-up cost
from xnorm.rerank.model import PRECISIONS as RERANK_PRECISIONS

from .engine_options import engine_options

FORMATS = ["bigbio", "brat", "pubtator", "hf"]


@click.command("link")
@click.argument("input_path", metavar="INPUT", required=False)
@click.option("-o", "--output", type=click.Path(dir_okay=True), help="Where to write the linked documents.")
@click.option("--index", "index_dir", type=click.Path(exists=True, file_okay=False),
              help="A saved candidate index (`xnorm index`).")
@click.option("--terminology", help="A saved terminology folder, a recipe file or a built-in recipe name; "
              "the index is built on the fly and cached.")
@click.option("--linker", "linker_dir", type=click.Path(exists=True, file_okay=False),
              help="A saved linker folder (`Linker.save`).")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False),
              help="A linker YAML config (see README).")
@click.option("--top-k", type=click.IntRange(1, 1024), default=None, help="Predictions per mention [default: 1].")
@click.option("--lang", help="Language (ISO 639-1) of every mention, or `auto`: a document's `lang` field, else "
              "detected from its text. Default: the document's `lang` field, else en.")
@click.option("--format", "in_format", type=click.Choice(FORMATS), help="Input format [default: detected].")
@click.option("--output-format", type=click.Choice(["bigbio", "brat"]),
              help="Output format [default: bigbio, or brat for a brat input].")
@click.option("--db-name", help="db_name written with each prediction [default: the terminology's, e.g. HPO]; "
              "for PubTator input also the db_name of bare gold ids.")
@click.option("--under", multiple=True, metavar="CONCEPT_ID",
              help="Predict only this concept and its is_a descendants (repeatable), e.g. --under HP:0000707 for the "
                   "nervous system branch of HPO.")
@click.option("--threshold", type=float, help="NIL threshold: a mention whose best score is below gets no "
              "prediction (empty list).")
@click.option("--field", default="normalized", show_default=True,
              help="Entity field that receives the predictions.")
@click.option("--overwrite", is_flag=True, help="Replace a non-empty FIELD (gold annotations). Without it, an "
              "input whose entities already have FIELD filled is refused: use --field pred to keep both.")
@click.option("--explain", is_flag=True, help="Add the matched name and the route to each prediction and print "
              "which pipeline ran.")
@click.option("--text", help="Quick use: link mention(s) in this text (with --mention START:END).")
@click.option("--mention", "spans", multiple=True, help="START:END character span in --text (repeatable).")
@click.option("--terms", is_flag=True, help="Quick use: read one term per line from stdin, print a TSV.")
@click.option("--batch-size", type=click.IntRange(1), default=64, show_default=True,
              help="Documents per batch; a mention text repeated within a batch is searched once.")
@click.option("--reranker", "reranker_dir", help="Rerank the top candidates with this reranker folder "
              "(`xnorm train-reranker`), CrossEncoder folder or adapter-zoo name; `none`: no reranker. Default: the "
              "linker's; the embedded default pipeline reranks with the shipped hpo-translate-rerank-e5small.")
@click.option("--rerank-precision", type=click.Choice(RERANK_PRECISIONS),
              help="The reranker's precision: auto (bf16 where the CPU/GPU has it natively), fp32 or bf16 "
              "[default: the linker config's rerank_precision].")
@click.option("--query-model", help="Encode the mentions with this query encoder (a zoo name or folder distilled "
              "from the index's dense model: faster linking, same index).")
@click.option("--query-precision", type=click.Choice(PRECISIONS),
              help="With --query-model: its precision (default auto: bf16 where the CPU has it, else fp32 in ONNX "
              "Runtime; int8: ONNX Runtime, faster still).")
@engine_options("local: this process. ray: Ray Data workers, each holding the loaded linker (needs "
                "`pip install \"xnorm[ray]\"`); OUTPUT is then a folder of BigBIO JSONL parts + manifest.",
                workers_of="linker")
@click.option("--part-docs", type=click.IntRange(1), default=10_000, show_default=True,
              help="--engine ray: documents per output part file.")
def link(input_path, output, index_dir, terminology, linker_dir, config_path, top_k, lang, in_format,
         output_format, db_name, under, threshold, field, overwrite, explain, text, spans, terms, batch_size,
         reranker_dir, rerank_precision, query_model, query_precision, engine, address, workers, part_docs):
    """Normalize entity mentions in INPUT and write OUTPUT.

    INPUT holds documents with entity mentions: BigBIO kb JSONL, a BRAT folder (.txt + .ann), PubTator, or a
    Hugging Face dataset folder (`FOLDER::split` picks a split; detected, --format forces). OUTPUT is the same documents, unchanged except that
    each entity's FIELD (default `normalized`) holds the ranked predictions, best first, each
    {db_name, db_id, score}. Nothing is written unless the run finishes.

    With no --index/--terminology/--linker/--config, the embedded default runs (English HPO + the embedded
    multilingual encoder with its shipped HPO alignment adapter): it works offline; its first run builds and
    caches the index.

    \b
    Examples:
      xnorm link notes.bigbio.jsonl -o linked.jsonl --top-k 5
      xnorm link --text "Patient with recurrent seizures." --mention 23:31
      xnorm link notes.bigbio.jsonl -o linked.jsonl --under HP:0000707
      printf 'convulsiones\\nbaja estatura\\n' | xnorm link --terms --lang es
      xnorm link corpus.jsonl -o linked/ --linker my-linker --engine ray --workers 2
    """
    quick = text is not None or terms
    if quick and input_path:
        raise click.UsageError("give INPUT or --text/--terms, not both.")
    if not quick and not input_path:
        raise click.UsageError("missing INPUT (or use --text / --terms for quick use).")
    if not quick and not output:
        raise click.UsageError("missing -o/--output.")
    if spans and text is None:
        raise click.UsageError("--mention needs --text.")
    check_one_pipeline(index_dir, terminology, linker_dir, config_path)
    if query_precision is not None and not query_model:
        raise click.UsageError("--query-precision applies to --query-model.")

    if not quick:  # check the input before the (slower) linker is built
        from xnorm.data import detect_format

        fmt_in = in_format or detect_format(input_path)
    if engine != "ray" and (address or workers != 1 or part_docs != 10_000):
        raise click.UsageError("--address, --workers and --part-docs apply to --engine ray.")

    def build():  # the linker the options describe (Ray workers get it saved, the local engine uses it directly)
        built = _make_linker(index_dir, terminology, linker_dir, config_path, threshold)
        if reranker_dir or rerank_precision:
            if rerank_precision and (reranker_dir == "none" or not (reranker_dir or built.reranker)):
                raise click.UsageError("--rerank-precision applies to a reranker (--reranker, or one in the "
                                       "linker or config).")
            built.set_reranker(reranker_dir or built.reranker, rerank_precision)
        if query_model:
            built.set_query_model(query_model, query_precision or QUERY_PRECISION)
        if db_name:
            built.config.db_name = db_name
        if under:
            built.set_under(list(under))
        return built

    if engine == "ray":
        if quick:
            raise click.UsageError("--engine ray links INPUT files; quick use (--text/--terms) runs locally.")
        if output_format == "brat":
            raise click.UsageError("--engine ray writes a folder of BigBIO JSONL parts; drop --output-format brat.")
        saved = linker_dir if linker_dir and not (reranker_dir or rerank_precision or query_model) else None
        _link_ray(input_path, output, fmt_in, lang, db_name, threshold, saved, build, address, workers,
                  batch_size, dict(top_k=top_k, field=field, overwrite=overwrite, explain=explain, lang=lang,
                                   docs_per_part=part_docs))
        return
    linker = build()
    if explain:
        click.echo(f"pipeline: {linker.pipeline}", err=True)
    if quick:
        _quick(linker, text, spans, lang, top_k, explain)
        return

    from tqdm import tqdm

    from xnorm.data import read_documents, write_documents

    reader_opts = reader_options(fmt_in, lang, db_name)
    docs = read_documents(input_path, format=fmt_in, **reader_opts)
    fmt = output_format or ("brat" if fmt_in == "brat" else "bigbio")
    done = [0]

    with tqdm(unit=" mentions", desc="linking", disable=None, file=sys.stderr) as bar:
        def progress(n: int) -> None:
            done[0] += n
            bar.update(n)

        linked = linker.link(docs, top_k=top_k, field=field, overwrite=overwrite, explain=explain,
                             batch_size=batch_size, lang=lang, progress=progress)
        n_docs = write_documents(linked, output, format=fmt)
    click.echo(f"linked {done[0]} mentions in {n_docs} documents -> {output}", err=True)
    cache_line = linker.index.describe_cache() if explain else None
    if cache_line:
        click.echo(cache_line, err=True)
    if done[0] == 0:
        click.echo(f"xnorm: warning: {input_path} holds no entity mentions; the documents were copied unchanged.",
                   err=True)


def _link_ray(input_path, output, fmt_in, lang, db_name, threshold, linker_dir, build, address, workers,
              batch_size, options) -> None:
    """--engine ray: a saved linker (--linker, or the one the options describe saved to a temporary folder
    beside OUTPUT and removed afterwards) runs on Ray workers; OUTPUT becomes a folder of JSONL parts."""
    import shutil
    import tempfile
    from pathlib import Path

    from tqdm import tqdm

    from xnorm.engines.ray_engine import link_with_ray

    reader_opts = reader_options(fmt_in, lang, db_name)
    overrides = {k: v for k, v in (("threshold", threshold), ("db_name", db_name)) if v is not None}
    tmp = None
    try:
        if linker_dir is None:
            linker = build()
            if options["explain"]:
                click.echo(f"pipeline: {linker.pipeline}", err=True)
            parent = Path(output).resolve().parent
            parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".xnorm-linker-", dir=parent))
            linker_dir = linker.save(tmp / "linker")
            del linker
        with tqdm(unit=" mentions", desc="linking (ray)", disable=None, file=sys.stderr) as bar:
            run = link_with_ray(linker_dir, input_path, output, address=address, num_workers=workers,
                                batch_size=batch_size, input_format=fmt_in, reader_options=reader_opts,
                                overrides=overrides, progress=bar.update, **options)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    click.echo(f"linked {run.mentions} mentions in {run.documents} documents with {run.workers} Ray worker(s) "
               f"-> {output} ({run.parts} part(s), {run.seconds:.1f} s)", err=True)


def check_one_pipeline(index_dir, terminology, linker_dir, config_path) -> None:
    """At most one of the options that say which pipeline runs."""
    if sum(x is not None for x in (index_dir, terminology, linker_dir, config_path)) > 1:
        raise click.UsageError("give at most one of --index, --terminology, --linker, --config.")


def reader_options(fmt: str, lang: str | None, db_name: str | None = None) -> dict:
    """`read_documents` options from --lang / --db-name, for the formats that do not carry them."""
    opts = {}
    if fmt in ("brat", "pubtator") and lang and lang != "auto":
        opts["lang"] = lang
    if fmt == "pubtator" and db_name:
        opts["db_name"] = db_name
    return opts


def _make_linker(index_dir, terminology, linker_dir, config_path, threshold):
    from xnorm.linker import Linker, LinkerConfig

    if linker_dir:
        linker = Linker.load(linker_dir)
    elif config_path:
        linker = Linker.from_config(config_path, show_progress=True)
    else:
        cfg = LinkerConfig()
        if index_dir:
            cfg.index = index_dir
        elif terminology:
            cfg.terminology = terminology
        linker = Linker.from_config(cfg, show_progress=True)
    if threshold is not None:
        linker.config.threshold = threshold
    return linker


def _quick(linker, text, spans, lang, top_k, explain) -> None:
    """--text/--mention or --terms: print one TSV row per prediction."""
    from xnorm.errors import InputError
    from xnorm.types import Mentions

    lang = lang or linker.config.default_lang
    if text is not None:
        if not spans:
            spans = (f"0:{len(text)}",)
        texts = []
        for s in spans:
            try:
                start, end = (int(x) for x in s.split(":"))
            except ValueError:
                raise InputError(f"bad span {s!r}.", field="--mention", fix="write START:END, e.g. 0:7.") from None
            if not 0 <= start < end <= len(text):
                raise InputError(f"span {s} is outside the text (length {len(text)}).", field="--mention",
                                 fix="give 0 <= START < END <= length of --text.")
            texts.append(text[start:end])
    else:
        texts = [line.strip() for line in sys.stdin if line.strip()]
    if lang == "auto":  # one language for the quick input: detected from the whole text (or all terms)
        from xnorm.data.language import detect_language

        lang = detect_language(text if text is not None else "\n".join(texts), linker.config.default_lang)
    mentions = Mentions.from_texts(texts, lang)
    preds = linker.predict(mentions, top_k)
    ids = preds.concept_ids(linker.terminology)
    term = linker.terminology
    header = ["mention", "rank", "db_id", "score", "preferred_name"] + (["matched_name", "route"] if explain else [])
    click.echo("\t".join(header))
    from xnorm.types import ROUTE_NAMES

    for i, t in enumerate(texts):
        for j in range(ids.shape[1]):
            if ids[i, j] is None:
                if j == 0:
                    click.echo(f"{t}\t1\t\t\t(NIL)")
                break
            row = [t, str(j + 1), ids[i, j], f"{preds.scores[i, j]:.4f}", term.preferred_names[preds.concepts[i, j]]]
            if explain:
                n = preds.names[i, j]
                row += [term.name_texts[n] if n >= 0 else "", ROUTE_NAMES[preds.routes[i, j]]]
            click.echo("\t".join(row))
