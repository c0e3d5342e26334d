"""PubTator files to and from kb documents.

A document is a block of lines, blocks separated by blank lines::

    PMID|t|title
    PMID|a|abstract
    PMID<TAB>start<TAB>end<TAB>mention<TAB>type<TAB>ids      (offsets over title + " " + abstract)
    PMID<TAB>CID<TAB>D000001<TAB>D000002                     (a relation line, as in BC5CDR)

``ids`` may be empty or ``-1`` (no concept), one id, or several joined by ``|`` or ``+`` (composite mentions):
each becomes one ``normalized`` entry. An id with a prefix (``OMIM:123``, ``MESH:D012345``) gets the prefix as
``db_name`` and the rest as ``db_id``; a bare id (``D012345``) gets the ``db_name`` option (MeSH by default,
what NCBI Disease and BC5CDR use). OBO-style ids keep their prefix in ``db_id`` (``HP:0001250`` -> db_name HPO).
Relation lines are kept in the document's ``pubtator_relations`` (their arguments are concept ids, not entity
ids), further mention columns in the entity's ``pubtator_columns``. A PMID seen twice (NCBI Disease's train
file has one) keeps its ``document_id`` and gets the unique ``id`` ``PMID_2``.
"""
from __future__ import annotations

import os
import re
import warnings
from collections import Counter
from pathlib import Path
from typing import Iterable, Iterator

from .._io import atomic_write
from ..errors import InputError
from .schema import DOCUMENT_FIELDS, as_list, document_text, passage_pieces
from .validate import DocumentValidator

_TITLE = re.compile(r"^([^|\t]+)\|([ta])\|(.*)$")
# OBO ontologies write their ids as CURIEs: the prefix is part of the id. Value: the db_name to use.
OBO_PREFIXES = {"HP": "HPO", "MONDO": "MONDO", "DOID": "DOID", "GO": "GO", "CHEBI": "CHEBI", "UBERON": "UBERON",
                "ORPHA": "ORPHA", "ORDO": "ORDO", "CL": "CL", "SO": "SO", "NCBITaxon": "NCBITaxon"}
_OBO_DB = {v: k for k, v in OBO_PREFIXES.items()}
DEFAULT_DB_NAME = "MESH"


def parse_ids(field: str, db_name: str = DEFAULT_DB_NAME) -> list[dict]:
    """``normalized`` entries of a PubTator id column (``D1|D2``, ``OMIM:123``, ``-1``, ``''``)."""
    out = []
    for raw in re.split(r"[|+]", field.strip()):
        raw = raw.strip()
        if not raw or raw == "-1":
            continue
        prefix, sep, rest = raw.partition(":")
        if not sep or not rest:
            out.append({"db_name": db_name, "db_id": raw})
        elif prefix in OBO_PREFIXES:
            out.append({"db_name": OBO_PREFIXES[prefix], "db_id": raw})
        else:
            out.append({"db_name": prefix, "db_id": rest})
    return out


def format_ids(normalized: list[dict], db_name: str = DEFAULT_DB_NAME) -> str:
    """The PubTator id column for ``normalized`` (inverse of :func:`parse_ids`); ``-1`` when empty."""
    ids = []
    for item in normalized:
        name, value = item.get("db_name") or "", str(item["db_id"])
        obo = _OBO_DB.get(name)
        if name == db_name or not name or (obo and value.startswith(obo + ":")):
            ids.append(value)
        else:
            ids.append(f"{name}:{value}")
    return "|".join(ids) if ids else "-1"


def read_pubtator(path: str | os.PathLike, db_name: str = DEFAULT_DB_NAME, lang: str | None = None,
                  validate: bool = True) -> Iterator[dict]:
    """Yield the documents of a PubTator file one block at a time."""
    path = Path(path)
    if not path.is_file():
        raise InputError("file not found.", file=str(path), fix="check the path.")
    check = DocumentValidator(str(path)) if validate else None
    seen: Counter = Counter()
    block: list[tuple[int, str]] = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if line.strip():
                block.append((line_no, line))
                continue
            if block:
                yield _finish(block, path, db_name, lang, seen, check)
                block = []
    if block:
        yield _finish(block, path, db_name, lang, seen, check)


def _finish(block, path: Path, db_name: str, lang: str | None, seen: Counter, check) -> dict:
    title = abstract = None
    pmid = None
    mentions, relations = [], []
    for line_no, line in block:
        m = _TITLE.match(line)
        if m and "\t" not in m[1]:
            if pmid is not None and m[1] != pmid:
                raise InputError(f"PMID {m[1]!r} starts without a blank line after document {pmid!r}.",
                                 file=str(path), line=line_no, fix="separate documents by a blank line.")
            pmid = m[1]
            if m[2] == "t":
                title = m[3]
            else:
                abstract = m[3]
            continue
        parts = line.split("\t")
        if pmid is None:
            raise InputError("a mention line comes before the document's `PMID|t|title` line.", file=str(path),
                             line=line_no, fix="start each document with `PMID|t|title` and `PMID|a|abstract`.")
        if parts[0] != pmid:
            raise InputError(f"line belongs to PMID {parts[0]!r} inside the block of {pmid!r}.", file=str(path),
                             line=line_no, fix="separate documents by a blank line.")
        if len(parts) >= 5 and parts[1].isdigit() and parts[2].isdigit():
            mentions.append((line_no, parts))
        elif len(parts) >= 3 and not parts[1].isdigit():
            relations.append(parts[1:])
        else:
            raise InputError(f"expected `PMID<TAB>start<TAB>end<TAB>mention<TAB>type<TAB>ids`, got {len(parts)} "
                             "columns.", file=str(path), line=line_no, document=pmid,
                             fix="write mention lines with tab-separated columns, offsets as integers.")
    seen[pmid] += 1
    doc_id = pmid if seen[pmid] == 1 else f"{pmid}_{seen[pmid]}"
    doc: dict = {"id": doc_id, "document_id": pmid, "passages": [], "entities": [], "events": [],
                 "coreferences": [], "relations": []}
    start = 0
    for ptype, text in (("title", title), ("abstract", abstract)):
        if text is None:
            continue
        doc["passages"].append({"id": f"{doc_id}_{ptype}", "type": ptype, "text": [text],
                                "offsets": [[start, start + len(text)]]})
        start += len(text) + 1
    for i, (line_no, parts) in enumerate(mentions, 1):
        ent = {"id": f"{doc_id}_T{i}", "type": parts[4], "text": [parts[3]],
               "offsets": [[int(parts[1]), int(parts[2])]],
               "normalized": parse_ids(parts[5] if len(parts) > 5 else "", db_name)}
        if len(parts) > 6:
            ent["pubtator_columns"] = parts[6:]
        doc["entities"].append(ent)
    if relations:
        doc["pubtator_relations"] = relations
    if lang:
        doc["lang"] = lang
    if check is not None:
        check(doc, block[0][0])
    return doc


def write_pubtator(docs: Iterable[dict], path: str | os.PathLike, db_name: str = DEFAULT_DB_NAME) -> int:
    """Write documents as PubTator (first passage = title, the rest = abstract), atomically; return how many.

    Raises ``InputError`` for what PubTator cannot hold: a newline inside a text, a discontinuous entity.
    """
    n = 0
    dropped: set[str] = set()
    with atomic_write(path) as f:
        for doc in docs:
            pmid = str(doc.get("document_id") or doc["id"])
            text = document_text(doc)
            pieces = sorted(passage_pieces(doc))
            title_end = pieces[0][1] if pieces else len(text)
            if "\n" in text or "\r" in text:
                raise InputError("the text holds a line break, which PubTator cannot store.", document=str(doc["id"]),
                                 field="passages", fix="write BigBIO JSONL or brat instead.")
            f.write(f"{pmid}|t|{text[:title_end]}\n")
            if len(pieces) > 1:
                f.write(f"{pmid}|a|{text[title_end + 1:]}\n")
            for ent in doc.get("entities") or []:
                offsets = ent.get("offsets") or []
                if len(offsets) != 1:
                    raise InputError(f"entity {ent.get('id')!r} has {len(offsets)} offset pieces; PubTator holds one "
                                     "span per mention.", document=str(doc["id"]), field="entities.offsets",
                                     fix="write BigBIO JSONL or brat instead.")
                (s, e), = offsets
                cols = [pmid, str(s), str(e), " ".join(as_list(ent.get("text"))), str(ent.get("type", "")),
                        format_ids(ent.get("normalized") or [], db_name), *ent.get("pubtator_columns", [])]
                f.write("\t".join(cols) + "\n")
                dropped.update(f"entities.{k}" for k in ent if k not in
                               ("id", "type", "text", "offsets", "normalized", "pubtator_columns"))
                dropped.update(f"entities.normalized.{k}" for x in ent.get("normalized") or [] for k in x
                               if k not in ("db_name", "db_id"))
            for rel in doc.get("pubtator_relations") or []:
                f.write("\t".join([pmid, *map(str, rel)]) + "\n")
            f.write("\n")
            dropped.update(k for k in doc if k not in DOCUMENT_FIELDS and k != "pubtator_relations")
            n += 1
    if dropped:
        warnings.warn(f"PubTator cannot store the field(s) {', '.join(sorted(dropped))}; they are not in {path}. "
                      "Write BigBIO JSONL to keep them.", stacklevel=2)
    return n
