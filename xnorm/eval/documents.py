"""Evaluate BigBIO kb documents: align predicted and gold documents, then compute every metric.

This is the library side of ``xnorm evaluate``. Predicted documents are what ``xnorm link --top-k K`` writes:
the gold documents' entities whose ``normalized`` list holds ranked predictions, best first, each
``{db_name, db_id, score}``.

Alignment rules:

- Documents are matched by ``document_id`` (``id`` when a document has no ``document_id``). A document in one
  file but not the other is an error unless ``allow_missing``; then gold documents without predictions count
  as misses and predicted documents absent from gold are ignored (gold cannot judge them).
- Mention level: a gold entity is matched to the predicted entity with the same entity ``id`` in the same
  document; a missing predicted entity is a miss. Gold entities without any id (NIL) are left out and
  counted as ``n_nil_gold``.
- Entity level: every entity of both sides, matched by span (see :mod:`xnorm.eval.entity`).
- Ids: ``db_id`` strings are compared after stripping a leading ``<db_name>:`` (case-insensitive), so
  ``{db_name: "HP", db_id: "HP:0001250"}`` and ``{db_name: "HP", db_id: "0001250"}`` are the same id, and
  ``{db_name: "HPO", db_id: "HP:0001250"}`` stays ``HP:0001250``. ``db_name`` is not compared otherwise.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from ..errors import InputError
from .breakdown import breakdown, group_keys
from .entity import MODES, EntityTable, entity_metrics
from .hierarchy import lineage, summarize
from .ranking import DEFAULT_KS, as_prediction_array, first_hit_ranks, metric_names, metrics_from_ranks, \
    per_mention_values
from .stats import PAIRED_TESTS, bootstrap_ci, won_lost

ID_RULE = "db_id compared after stripping a leading '<db_name>:' (case-insensitive)"


def normalize_db_id(db_name: str | None, db_id: str) -> str:
    """``db_id`` without a leading ``<db_name>:`` prefix (the one rule used to compare ids)."""
    db_id = str(db_id).strip()
    if db_name:
        prefix = f"{db_name}:"
        if db_id[: len(prefix)].lower() == prefix.lower():
            return db_id[len(prefix):]
    return db_id


def document_key(doc: Mapping) -> str:
    """The key documents are matched by: ``document_id``, else ``id``."""
    key = doc.get("document_id")
    if key is None or key == "":
        key = doc.get("id")
    return "" if key is None else str(key)


@dataclass
class AlignedRun:
    """Gold mentions and the predictions for them, as parallel arrays (one row per gold mention with an id)."""

    predictions: np.ndarray  # [n, k] object, ranked ids, None = empty slot
    gold: list[tuple[str, ...]]  # gold ids per mention (alternatives)
    doc_ids: np.ndarray
    entity_ids: np.ndarray
    keys: dict[str, np.ndarray]  # breakdown columns: lang, type and any requested gold-entity field
    gold_entities: EntityTable
    pred_entities: EntityTable
    n_nil_gold: int = 0
    n_documents: int = 0  # gold documents evaluated
    missing_docs: list[str] = field(default_factory=list)  # gold documents with no predicted document
    extra_docs: list[str] = field(default_factory=list)  # predicted documents not in gold (ignored)


def _index_documents(docs: Iterable[Mapping], name: str) -> dict[str, Mapping]:
    out: dict[str, Mapping] = {}
    for i, doc in enumerate(docs):
        if not isinstance(doc, Mapping):
            raise InputError(f"document {i + 1} is a {type(doc).__name__}, not an object.", file=name,
                             fix="give BigBIO kb documents, one JSON object per line.")
        key = document_key(doc)
        if not key:
            raise InputError(f"document {i + 1} has neither `document_id` nor `id`.", file=name,
                             field="document_id", fix="give every document a unique document_id.")
        if key in out:
            raise InputError("document id occurs twice.", file=name, document=key, field="document_id",
                             fix="give every document a unique document_id (or merge the two).")
        out[key] = doc
    return out


def _ids(entity: Mapping, name: str, doc: str, field_name: str) -> list[str]:
    """Ranked ids of an entity's ``field_name`` list, each normalised by :func:`normalize_db_id`."""
    items = entity.get(field_name) or []
    if not isinstance(items, list):
        raise InputError(f"entity {entity.get('id')!r}: `{field_name}` is not a list.", file=name, document=doc,
                         field=field_name, fix="write it as a list of {db_name, db_id} objects.")
    out = []
    for item in items:
        if not isinstance(item, Mapping) or item.get("db_id") in (None, ""):
            raise InputError(f"entity {entity.get('id')!r}: a `{field_name}` entry has no db_id ({item!r}).",
                             file=name, document=doc, field=f"{field_name}.db_id",
                             fix="give every entry a db_id (and a db_name), or remove the entry.")
        out.append(normalize_db_id(item.get("db_name"), item["db_id"]))
    return out


def _span(entity: Mapping, name: str, doc: str) -> list[tuple[int, int]]:
    offsets = entity.get("offsets")
    try:
        pieces = [(int(s), int(e)) for s, e in offsets]
        if not pieces:
            raise ValueError
    except (TypeError, ValueError):
        raise InputError(f"entity {entity.get('id')!r} has no valid offsets ({offsets!r}).", file=name,
                         document=doc, field="offsets", fix="write offsets as [[start, end], ...].") from None
    return pieces


def _entities(doc: Mapping, name: str, key: str) -> list[Mapping]:
    ents = doc.get("entities") or []
    if not isinstance(ents, list):
        raise InputError("`entities` is not a list.", file=name, document=key, field="entities",
                         fix="write entities as a list of objects.")
    return ents


def _entity_field(entity: Mapping, doc: Mapping, name: str) -> str:
    """A breakdown key: the entity's field, else the document's (e.g. ``lang``), else ""."""
    value = entity.get(name)
    if value is None:
        value = doc.get(name)
    if isinstance(value, list):  # BigBIO `text` and the like
        value = " ".join(map(str, value))
    return "" if value is None else str(value)


def align_documents(
    pred_docs: Iterable[Mapping],
    gold_docs: Iterable[Mapping],
    *,
    pred_name: str = "PRED",
    gold_name: str = "GOLD",
    allow_missing: bool = False,
    pred_field: str = "normalized",
    gold_field: str = "normalized",
    key_fields: Sequence[str] = ("lang", "type"),
) -> AlignedRun:
    """Match predicted to gold documents and entities (rules in the module docstring).

    ``pred_field`` / ``gold_field``: the entity field holding the ranked predictions / the gold ids (``xnorm link
    --field pred`` keeps both in one file). ``key_fields``: breakdown columns to collect (see ``AlignedRun.keys``).
    """
    gold_by_key = _index_documents(gold_docs, gold_name)
    pred_by_key = _index_documents(pred_docs, pred_name)
    missing = [k for k in gold_by_key if k not in pred_by_key]
    extra = [k for k in pred_by_key if k not in gold_by_key]
    if not allow_missing and (missing or extra):
        if extra:
            raise InputError(f"this document is in {pred_name} but not in {gold_name}"
                             f" ({len(extra)} such document(s)).", file=pred_name, document=extra[0],
                             fix="evaluate predictions made for the gold documents, or pass --allow-missing.")
        raise InputError(f"this document of {gold_name} has no predictions in {pred_name}"
                         f" ({len(missing)} such document(s)).", file=gold_name, document=missing[0],
                         fix="predict every gold document, or pass --allow-missing to count them as misses.")

    preds: list[list[str]] = []
    gold: list[tuple[str, ...]] = []
    doc_col, ent_col = [], []
    key_cols: dict[str, list[str]] = {k: [] for k in key_fields}
    g_doc, g_span, g_type, g_ids = [], [], [], []
    p_doc, p_span, p_type, p_ids = [], [], [], []
    n_nil = 0
    for key, gdoc in gold_by_key.items():
        pdoc = pred_by_key.get(key)
        pred_ents: dict[str, Mapping] = {}
        if pdoc is not None:
            for ent in _entities(pdoc, pred_name, key):
                p_doc.append(key)
                p_span.append(_span(ent, pred_name, key))
                p_type.append(str(ent.get("type") or ""))
                p_ids.append(tuple(_ids(ent, pred_name, key, pred_field)[:1]))
                if ent.get("id") is not None:
                    if str(ent["id"]) in pred_ents:
                        raise InputError(f"entity id {ent['id']!r} occurs twice.", file=pred_name, document=key,
                                         field="entities.id", fix="give every entity a unique id.")
                    pred_ents[str(ent["id"])] = ent
        seen: set[str] = set()
        for ent in _entities(gdoc, gold_name, key):
            ids = tuple(dict.fromkeys(_ids(ent, gold_name, key, gold_field)))
            g_doc.append(key)
            g_span.append(_span(ent, gold_name, key))
            g_type.append(str(ent.get("type") or ""))
            g_ids.append(ids)
            eid = ent.get("id")
            if eid is None or eid == "":
                raise InputError("a gold entity has no `id`.", file=gold_name, document=key, field="entities.id",
                                 fix="give every entity an id (predictions are matched to gold by it).")
            eid = str(eid)
            if eid in seen:
                raise InputError(f"entity id {eid!r} occurs twice.", file=gold_name, document=key,
                                 field="entities.id", fix="give every entity a unique id.")
            seen.add(eid)
            if not ids:
                n_nil += 1
                continue
            pent = pred_ents.get(eid)
            preds.append(_ids(pent, pred_name, key, pred_field) if pent is not None else [])
            gold.append(ids)
            doc_col.append(key)
            ent_col.append(eid)
            for k in key_fields:
                key_cols[k].append(_entity_field(ent, gdoc, k))

    def arr(values) -> np.ndarray:
        out = np.empty(len(values), dtype=object)
        out[:] = values
        return out

    return AlignedRun(
        predictions=as_prediction_array(preds),
        gold=gold,
        doc_ids=arr(doc_col),
        entity_ids=arr(ent_col),
        keys={k: arr(v) for k, v in key_cols.items()},
        gold_entities=EntityTable.build(g_doc, g_span, g_ids, g_type),
        pred_entities=EntityTable.build(p_doc, p_span, p_ids, p_type),
        n_nil_gold=n_nil,
        n_documents=len(gold_by_key),
        missing_docs=missing,
        extra_docs=extra,
    )


def evaluate_aligned(
    run: AlignedRun,
    *,
    ks: Sequence[int] = DEFAULT_KS,
    per: Sequence[str] = (),
    ci: bool = False,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    aliases: Mapping[str, str] | None = None,
    match_types: bool = False,
    hierarchy=None,
    is_a_levels: int | None = 1,
) -> tuple[dict, np.ndarray]:
    """Every figure for one aligned run, and the first-hit ranks (for paired tests).

    ``hierarchy`` (a ``Terminology`` with is_a edges): also ``result["hierarchy"]``, the top answers that are
    within ``is_a_levels`` of a gold concept (``xnorm.eval.hierarchy``).
    """
    ranks = first_hit_ranks(run.predictions, run.gold, aliases)
    result: dict = metrics_from_ranks(ranks, ks)
    near = None
    if hierarchy is not None:
        near = lineage(top1_predictions(run), run.gold, hierarchy, is_a_levels, aliases)
        result["hierarchy"] = summarize(near, is_a_levels)
    if ci and len(ranks):
        low, high = bootstrap_ci(per_mention_values(ranks, ks), n_resamples, confidence, seed)
        result["ci"] = {name: [float(lo), float(hi)] for name, lo, hi in zip(metric_names(ks), low, high)}
        result["ci"]["confidence"] = confidence
        result["ci"]["n_resamples"] = n_resamples
        result["ci"]["seed"] = seed
    result.update(entity_metrics(run.gold_entities, run.pred_entities, modes=MODES, match_types=match_types,
                                 aliases=aliases))
    if per:
        result["per"] = {
            p: breakdown(ranks, run.keys[p], ks, ci=ci, n_resamples=n_resamples, confidence=confidence, seed=seed)
            for p in per
        }
        if near is not None:  # lenient@1 per group too, keyed as breakdown keys its groups
            for p, groups in result["per"].items():
                keys = group_keys(run.keys[p])
                for group, figures in groups.items():
                    figures["lenient@1"] = float(near["lenient"][keys == group].mean())
    result["n_documents"] = run.n_documents
    result["n_nil_gold"] = run.n_nil_gold
    result["max_predictions"] = int(run.predictions.shape[1])
    result["missing_documents"] = len(run.missing_docs)
    result["ignored_documents"] = len(run.extra_docs)
    result["id_rule"] = ID_RULE
    return result, ranks


def top1_predictions(run: AlignedRun) -> np.ndarray:
    """Each gold mention's first prediction (None where there is none)."""
    return run.predictions[:, 0] if run.predictions.shape[1] else np.full(len(run.gold), None, dtype=object)


def compare_ranks(base_ranks: np.ndarray, ranks: np.ndarray, test: str = "bootstrap", seed: int = 0,
                  n_resamples: int = 10000) -> dict[str, dict]:
    """A run against a baseline on the same mentions, from their first-hit ranks: for accuracy@1 and MRR the
    paired ``test``'s result (``PairedTest.to_dict``); accuracy@1 also counts the mentions ``won`` / ``lost``
    (top prediction turned right / wrong), so that a delta of a few mentions reads as such."""
    a, b = per_mention_values(base_ranks, [1]), per_mention_values(ranks, [1])
    names = metric_names([1])
    i, j = names.index("accuracy@1"), names.index("mrr")
    return {"accuracy@1": compare_hits(a[:, i], b[:, i], test, seed, n_resamples),
            "mrr": PAIRED_TESTS[test](a[:, j], b[:, j], n_resamples, seed).to_dict()}


def compare_hits(base: np.ndarray, run: np.ndarray, test: str = "bootstrap", seed: int = 0,
                 n_resamples: int = 10000) -> dict:
    """Per-mention 0/1 hits of a run against a baseline's: the paired ``test``'s result and the mentions ``won`` /
    ``lost`` (turned right / wrong)."""
    won, lost = won_lost(base, run)
    return {**PAIRED_TESTS[test](np.asarray(base, float), np.asarray(run, float), n_resamples, seed).to_dict(),
            "won": won, "lost": lost}


def evaluate_documents(
    pred_docs: Iterable[Mapping],
    gold_docs: Iterable[Mapping],
    *,
    ks: Sequence[int] = DEFAULT_KS,
    per: Sequence[str] = (),
    ci: bool = False,
    n_resamples: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    aliases: Mapping[str, str] | None = None,
    match_types: bool = False,
    allow_missing: bool = False,
    pred_name: str = "PRED",
    gold_name: str = "GOLD",
    baseline_docs: Iterable[Mapping] | None = None,
    baseline_name: str = "BASELINE",
    test: str = "bootstrap",
    pred_field: str = "normalized",
    gold_field: str = "normalized",
    hierarchy=None,
    is_a_levels: int | None = 1,
) -> dict:
    """All metrics of predicted BigBIO documents against gold ones (see the module docstring).

    ``per``: breakdown keys (``lang``, ``type`` or any gold-entity / document field). With ``baseline_docs``,
    the result also holds ``comparison``: a paired ``test`` ("bootstrap" or "randomization") of this run
    against the baseline on accuracy@1 and MRR over the same gold mentions. ``hierarchy`` (a ``Terminology``
    with is_a edges) adds ``hierarchy``: lenient@1 and the finer / coarser near-misses (``xnorm.eval.hierarchy``).
    """
    if test not in PAIRED_TESTS:
        raise ValueError(f"unknown test {test!r}; use one of {sorted(PAIRED_TESTS)}")
    gold_docs = list(gold_docs)
    key_fields = tuple(dict.fromkeys(("lang", "type", *per)))
    fields = dict(pred_field=pred_field, gold_field=gold_field, key_fields=key_fields)
    run = align_documents(pred_docs, gold_docs, pred_name=pred_name, gold_name=gold_name,
                          allow_missing=allow_missing, **fields)
    for p in per:
        if len(run.gold) and not any(run.keys[p]):
            raise InputError(f"no gold entity or document has a field {p!r} to group by.", file=gold_name,
                             field=p, fix="use --per lang, --per type or a field the gold entities or documents "
                             "carry.")
    opts = dict(ks=ks, ci=ci, n_resamples=n_resamples, confidence=confidence, seed=seed, aliases=aliases,
                match_types=match_types)
    result, ranks = evaluate_aligned(run, per=per, hierarchy=hierarchy, is_a_levels=is_a_levels, **opts)
    if hierarchy is not None and len(run.gold) and not result["hierarchy"]["n_gold_in_hierarchy"]:
        raise InputError(f"none of the gold ids is a concept of the hierarchy terminology "
                         f"{hierarchy.metadata.get('name', '')!r}.", file=gold_name, field="hierarchy",
                         fix="give the terminology the gold ids come from (e.g. hpo-en for HPO ids).")
    if baseline_docs is not None:
        base = align_documents(baseline_docs, gold_docs, pred_name=baseline_name, gold_name=gold_name,
                               allow_missing=allow_missing, **fields)
        base_result, base_ranks = evaluate_aligned(base, **opts)
        comparison: dict = {"baseline": baseline_name, "test": test, "seed": seed}
        if len(ranks):
            for metric, paired in compare_ranks(base_ranks, ranks, test, seed).items():
                comparison[metric] = {"baseline": base_result[metric], "run": result[metric], **paired}
            if hierarchy is not None:  # lenient@1 too: does the run trade exact answers for near-misses?
                a, b = (lineage(top1_predictions(r), r.gold, hierarchy, is_a_levels, aliases)["lenient"]
                        for r in (base, run))
                comparison["lenient@1"] = {"baseline": float(a.mean()), "run": float(b.mean()),
                                           **compare_hits(a, b, test, seed)}
        result["comparison"] = comparison
    return result


def read_documents(path: str | os.PathLike) -> list[dict]:
    """Documents of ``path`` (any format ``xnorm.data`` reads).

    validate=False: evaluation checks what it needs itself (ids, offsets, normalized) and must accept files
    that carry no passage text (e.g. prediction exports of other tools).
    """
    from ..data import read_documents as data_read_documents

    return list(data_read_documents(path, validate=False))


def load_aliases(path: str | os.PathLike) -> dict[str, str]:
    """Id aliases from a saved terminology folder (its alt_id / replaced_by map) or a two-column TSV old<TAB>new."""
    path = Path(path)
    if path.is_dir():
        from ..terminology.core import Terminology

        return dict(Terminology.load(path).aliases)
    if not path.is_file():
        raise InputError("alias file not found.", file=str(path), fix="give a terminology folder or a TSV file.")
    aliases = {}
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.split("\t")
            if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
                raise InputError(f"expected two tab-separated ids, got {line!r}.", file=str(path), line=line_no,
                                 fix="write one `old_id<TAB>current_id` pair per line.")
            aliases[parts[0].strip()] = parts[1].strip()
    return aliases


def load_hierarchy(spec: str | os.PathLike):
    """A terminology for hierarchy-aware scoring; ``InputError`` when it has no is_a edges."""
    from ..terminology.recipe import load_terminology

    term = load_terminology(spec)
    if not len(term.is_a):
        raise InputError("this terminology has no is_a hierarchy to score near-misses with.", file=str(spec),
                         field="hierarchy", fix="give one built from an OBO file (e.g. hpo-en); folders saved before "
                         "xnorm kept is_a edges have none: rebuild them with `xnorm terminology build`.")
    return term


def evaluate_files(
    pred_path: str | os.PathLike,
    gold_path: str | os.PathLike,
    *,
    baseline_path: str | os.PathLike | None = None,
    aliases_path: str | os.PathLike | None = None,
    hierarchy_spec: str | os.PathLike | None = None,
    **options,
) -> dict:
    """:func:`evaluate_documents` on files (PRED, GOLD and optionally a BASELINE run and an alias map).

    ``hierarchy_spec``: a terminology (saved folder, recipe file or built-in recipe name) whose is_a hierarchy
    scores near-misses; its id aliases are applied too (after those of ``aliases_path``).
    """
    aliases = load_aliases(aliases_path) if aliases_path else None
    hierarchy = load_hierarchy(hierarchy_spec) if hierarchy_spec else None
    if hierarchy is not None:
        aliases = {**hierarchy.aliases, **(aliases or {})}
    baseline = read_documents(baseline_path) if baseline_path else None
    result = evaluate_documents(
        read_documents(pred_path), read_documents(gold_path), aliases=aliases, pred_name=str(pred_path),
        gold_name=str(gold_path), baseline_docs=baseline,
        baseline_name=str(baseline_path) if baseline_path else "BASELINE", hierarchy=hierarchy, **options,
    )
    result["pred"], result["gold"] = str(pred_path), str(gold_path)
    return result
