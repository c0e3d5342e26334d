"""Conversions between xnorm's data and xMEN 1.0.8's inputs and outputs (standard library only).

This module is imported from both sides of the comparison: by ``benchmarks/xmen_side_by_side.py`` in xnorm's
environment and by ``run_xmen.py`` inside xMEN's own virtual environment, where xnorm is not installed. So it
uses nothing but the standard library.

- xMEN's custom knowledge base (``xmen.kb.CompositeKnowledgebase`` / ``create_flat_term_dict``) is a JSONL file,
  one concept per line: ``{"concept_id", "canonical_name", "aliases", "types", "definition"}``; its dictionary
  is the set of unique (concept, name) pairs, canonical name included.
- Queries and predictions are BigBIO kb documents (JSONL). xMEN's predictions carry extra keys
  (``score``, ``predicted_by``) and a ``long_form`` per entity; ``ranked_normalized`` turns them back into
  plain ranked ``normalized`` lists, best first, one entry per concept.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

# The BigBIO kb keys xMEN's datasets.Features declare (plus its `lang`); anything else would fail its cast.
BIGBIO_DOC_KEYS = ("id", "document_id", "passages", "entities", "events", "coreferences", "relations")
ENTITY_KEYS = ("id", "type", "text", "offsets")


def kb_records(concept_ids: Sequence[str], preferred_names: Sequence[str], name_concepts: Sequence[int],
               name_texts: Sequence[str], semantic_types: Sequence[str] | None = None) -> Iterator[dict]:
    """One xMEN KB record per concept, in concept order: every name of the concept as an alias.

    ``name_concepts[i]`` is the row of ``concept_ids`` that name ``i`` belongs to (xnorm's columnar layout).
    The canonical name is the preferred name; aliases are the concept's other distinct names in their first
    order of appearance (xMEN deduplicates (concept, name) pairs itself, so repeats would change nothing).
    ``semantic_types`` (optional) holds ``|``-joined types per concept, written as xMEN's ``types`` list.
    """
    if len(name_concepts) != len(name_texts):
        raise ValueError(f"name_concepts ({len(name_concepts)}) and name_texts ({len(name_texts)}) differ in length")
    names: list[list[str]] = [[] for _ in range(len(concept_ids))]
    for row, text in zip(name_concepts, name_texts):
        names[int(row)].append(str(text))
    for i, cid in enumerate(concept_ids):
        canonical = str(preferred_names[i]) if preferred_names[i] else (names[i][0] if names[i] else "")
        if not canonical:
            raise ValueError(f"concept {cid!r} has neither a preferred name nor any name")
        aliases = [n for n in dict.fromkeys(names[i]) if n != canonical]
        types = [t for t in str(semantic_types[i]).split("|") if t] if semantic_types is not None and \
            semantic_types[i] else []
        yield {"concept_id": str(cid), "canonical_name": canonical, "aliases": aliases, "types": types,
               "definition": None}


def kb_pairs(records: Iterable[Mapping]) -> set[tuple[str, str]]:
    """The (concept id, name) pairs xMEN's flat term dictionary holds for these KB records."""
    pairs: set[tuple[str, str]] = set()
    for r in records:
        pairs.add((str(r["concept_id"]), r["canonical_name"]))
        pairs.update((str(r["concept_id"]), a) for a in r["aliases"])
    return pairs


def query_document(doc: Mapping) -> dict:
    """A gold BigBIO document stripped to what a linker may see: the schema keys, entities without ids.

    Extra document keys (xnorm's ``source_id``, ``status``...) are dropped because xMEN casts documents to
    its fixed ``datasets.Features``; ``lang`` is kept (both xnorm and xMEN's schema know it).
    """
    out: dict[str, Any] = {k: doc.get(k, []) for k in BIGBIO_DOC_KEYS}
    out["id"] = str(doc.get("id", doc.get("document_id")))
    out["document_id"] = str(doc.get("document_id", doc.get("id")))
    out["passages"] = [{"id": p.get("id"), "type": p.get("type"), "text": list(p["text"]),
                        "offsets": [list(o) for o in p["offsets"]]} for p in doc.get("passages", [])]
    out["entities"] = [{**{k: e.get(k) for k in ENTITY_KEYS}, "normalized": []} for e in doc.get("entities", [])]
    out["lang"] = doc.get("lang")
    return out


def ranked_normalized(normalized: Iterable[Mapping], k: int, db_name: str | None = None) -> list[dict]:
    """xMEN's predictions for one entity as a BigBIO ``normalized`` list: best score first, one entry per
    concept (its best score), at most ``k``; ties keep xMEN's order. ``db_name`` overrides the predicted one."""
    best: dict[str, tuple[float, int, str]] = {}
    for order, n in enumerate(normalized):
        db_id = n.get("db_id")
        if db_id is None or db_id == "":
            continue
        score = n.get("score")
        score = float("-inf") if score is None else float(score)
        if db_id not in best or score > best[db_id][0]:
            best[db_id] = (score, best[db_id][1] if db_id in best else order, n.get("db_name") or "")
    ranked = sorted(best.items(), key=lambda kv: (-kv[1][0], kv[1][1]))[:k]
    return [{"db_name": db_name if db_name is not None else name, "db_id": db_id, "score": score}
            for db_id, (score, _, name) in ranked]


def prediction_document(doc: Mapping, k: int, db_name: str | None = None) -> dict:
    """A document linked by xMEN as a plain BigBIO prediction document (``ranked_normalized`` per entity)."""
    out = dict(doc)
    out["entities"] = [{**{key: e.get(key) for key in ENTITY_KEYS},
                        "normalized": ranked_normalized(e.get("normalized") or [], k, db_name)}
                       for e in doc.get("entities", [])]
    return out


# ---- JSONL -------------------------------------------------------------------------------------------------
def read_jsonl(path: str | os.PathLike) -> list[dict]:
    """Every JSON object of a JSONL file (blank lines skipped); the line number is named on a parse error."""
    out = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise ValueError(f"{path}:{line_no}: not JSON ({e.msg})") from None
    return out


def write_jsonl(path: str | os.PathLike, records: Iterable[Mapping]) -> int:
    """Write records one per line, atomically (temp file in the same folder, then rename); returns the count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    n = 0
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for r in records:
                f.write(json.dumps(r, ensure_ascii=False))
                f.write("\n")
                n += 1
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return n
