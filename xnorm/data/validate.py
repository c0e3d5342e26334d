"""Validation of BigBIO kb documents: every problem is an ``InputError`` naming file, line, document, field and fix.

Text rule (tolerant but honest): an entity's text must equal the document text at its offsets, piece by piece
for discontinuous spans. Where they differ only in whitespace (runs of spaces, tabs or newlines inside the span
collapsed, e.g. an annotation tool that wrote "ventricular  septal\\ndefect" as "ventricular septal defect") the
entity is accepted; any other difference is an error. An entity whose ``text`` has one string for several
offset pieces is compared with the pieces joined by one space (how brat and some BigBIO loaders write it).
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Iterator

from ..errors import InputError
from .schema import (DOCUMENT_FIELDS, ENTITY_FIELDS, EXTENSION_FIELDS, LIST_FIELDS, PASSAGE_FIELDS,
                     RELATION_FIELDS, document_text, passage_pieces)

_WS = re.compile(r"\s+")
_FIX_SCHEMA = "see the BigBIO kb schema in the README (`xnorm.data.schema`)."


def same_text(a: str, b: str) -> bool:
    """Equal, or equal once whitespace runs are collapsed to one space and the ends stripped."""
    return a == b or _WS.sub(" ", a).strip() == _WS.sub(" ", b).strip()


class DocumentValidator:
    """Checks documents one by one and remembers ids, so that ids must be unique across the whole stream.

    ``strict=True`` also rejects top-level keys outside the schema (catches typos such as ``entites``); by default
    unknown keys are allowed and kept. Memory grows with the number of ids seen (a set of strings).
    """

    def __init__(self, source: str | None = None, strict: bool = False) -> None:
        self.source = source
        self.strict = strict
        self.ids: dict[str, str] = {}  # id -> document id that first used it

    def __call__(self, doc: Any, line: int | None = None) -> dict:
        return validate_document(doc, source=self.source, line=line, seen_ids=self.ids, strict=self.strict)


def validate_stream(docs: Iterable[dict], source: str | None = None, strict: bool = False) -> Iterator[dict]:
    """Yield ``docs`` unchanged, validating each (unique ids across the stream)."""
    check = DocumentValidator(source, strict)
    for doc in docs:
        yield check(doc)


def validate_document(doc: Any, source: str | None = None, line: int | None = None,
                      seen_ids: dict[str, str] | None = None, strict: bool = False) -> dict:
    """Check one kb document; return it unchanged or raise ``InputError``.

    ``seen_ids`` (id -> document id) is filled in and checked, for uniqueness across documents.
    """
    where = dict(file=source, line=line)
    if not isinstance(doc, dict):
        raise InputError(f"a document must be a JSON object, got {type(doc).__name__}.", **where,
                         fix="write one BigBIO kb document (an object with id, passages, entities) per line.")
    doc_id = doc.get("id")
    for key in ("id", "document_id"):
        if key not in doc or doc[key] is None or str(doc[key]) == "":
            raise InputError(f"required field {key!r} is missing.", **where,
                             document=None if doc_id is None else str(doc_id), field=key,
                             fix="give every document a non-empty `id` and `document_id` (they may be equal).")
    doc_name = str(doc_id)
    where["document"] = doc_name

    def err(msg: str, field: str, fix: str = _FIX_SCHEMA) -> InputError:
        return InputError(msg, **where, field=field, fix=fix)

    for key in ("passages", "entities"):
        if key not in doc:
            raise err(f"required field {key!r} is missing.", key, f"add `\"{key}\": []` if the document has none.")
    for key in LIST_FIELDS:
        if key in doc and not isinstance(doc[key], list):
            raise err(f"must be a list, got {type(doc[key]).__name__}.", key)
    if "lang" in doc and doc["lang"] is not None and not isinstance(doc["lang"], str):
        raise err("must be an ISO 639-1 code string such as \"en\".", "lang")
    if strict:
        unknown = sorted(set(doc) - set(DOCUMENT_FIELDS) - set(EXTENSION_FIELDS))
        if unknown:
            raise err(f"unknown field {unknown[0]!r} (strict validation).", unknown[0],
                      f"remove it or fix its name; known fields: {', '.join(DOCUMENT_FIELDS + EXTENSION_FIELDS)}.")

    local: set[str] = set()

    def check_id(obj: dict, field: str) -> str:
        field = f"{field}.id" if field else "id"
        value = obj.get("id")
        if value is None or str(value) == "":
            raise err("required field 'id' is missing.", field, "give every item a unique `id`.")
        value = str(value)
        if value in local or (seen_ids is not None and value in seen_ids):
            first = doc_name if value in local else seen_ids[value]  # type: ignore[index]
            raise err(f"id {value!r} is used twice (first in document {first!r}).", field,
                      "ids must be unique across the whole dataset: prefix them with the document id.")
        local.add(value)
        return value

    check_id(doc, "")

    # Passages: text pieces with their offsets; they define the text entity offsets index.
    for i, passage in enumerate(doc["passages"]):
        field = f"passages[{i}]"
        if not isinstance(passage, dict):
            raise err("a passage must be an object.", field)
        check_id(passage, field)
        for key in PASSAGE_FIELDS[1:]:
            if key not in passage:
                raise err(f"required field {key!r} is missing.", f"{field}.{key}")
        texts = passage["text"]
        texts = [texts] if isinstance(texts, str) else texts
        if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
            raise err("must be a list of strings.", f"{field}.text")
        offsets = passage["offsets"]
        _check_offsets(offsets, f"{field}.offsets", err, allow_empty=not texts)
        if len(offsets) != len(texts):
            raise err(f"has {len(offsets)} offset pairs for {len(texts)} texts.", f"{field}.offsets",
                      "give one [start, end] pair per passage text.")
        for j, (text, (s, e)) in enumerate(zip(texts, offsets)):
            if e - s != len(text):
                raise err(f"offsets [{s}, {e}] span {e - s} characters but the text has {len(text)}.",
                          f"{field}.offsets[{j}]", "passage offsets are [start, start + len(text)] in the "
                          "document text (passages joined by one space).")
    pieces = sorted(passage_pieces(doc))
    for (s0, e0, _), (s1, _, _) in zip(pieces, pieces[1:]):
        if s1 < e0:
            raise err(f"passages overlap ([{s0}, {e0}] and one starting at {s1}).", "passages",
                      "lay passages out one after another (joined by one space).")
    text = document_text(doc)

    entity_ids: set[str] = set()
    for i, ent in enumerate(doc["entities"]):
        field = f"entities[{i}]"
        if not isinstance(ent, dict):
            raise err("an entity must be an object.", field)
        entity_ids.add(check_id(ent, field))
        for key in ENTITY_FIELDS[1:]:
            if key not in ent:
                raise err(f"required field {key!r} is missing.", f"{field}.{key}",
                          "add `\"normalized\": []` for an entity with no concept yet." if key == "normalized"
                          else _FIX_SCHEMA)
        _check_entity_text(ent, field, text, err)
        _check_normalized(ent["normalized"], f"{field}.normalized", err)

    for i, event in enumerate(doc.get("events") or []):
        field = f"events[{i}]"
        if not isinstance(event, dict):
            raise err("an event must be an object.", field)
        entity_ids.add(check_id(event, field))
        trigger = event.get("trigger")
        if not isinstance(trigger, dict) or "text" not in trigger or "offsets" not in trigger:
            raise err("needs a trigger {text, offsets}.", f"{field}.trigger")
        if trigger["offsets"]:
            _check_entity_text(trigger, f"{field}.trigger", text, err)
    for i, event in enumerate(doc.get("events") or []):
        for j, arg in enumerate(event.get("arguments") or []):
            if not isinstance(arg, dict) or arg.get("ref_id") not in entity_ids:
                raise err(f"argument refers to {arg.get('ref_id') if isinstance(arg, dict) else arg!r}, which is "
                          "not an entity or event of this document.", f"events[{i}].arguments[{j}].ref_id",
                          "refer to the id of an entity or event of the same document.")
    for i, coref in enumerate(doc.get("coreferences") or []):
        field = f"coreferences[{i}]"
        if not isinstance(coref, dict):
            raise err("a coreference must be an object.", field)
        check_id(coref, field)
        missing = [x for x in coref.get("entity_ids") or [] if x not in entity_ids]
        if missing:
            raise err(f"refers to {missing[0]!r}, which is not an entity of this document.", f"{field}.entity_ids",
                      "list ids of entities of the same document.")
    for i, rel in enumerate(doc.get("relations") or []):
        field = f"relations[{i}]"
        if not isinstance(rel, dict):
            raise err("a relation must be an object.", field)
        check_id(rel, field)
        for key in RELATION_FIELDS[1:4]:
            if key not in rel:
                raise err(f"required field {key!r} is missing.", f"{field}.{key}")
        for key in ("arg1_id", "arg2_id"):
            if rel[key] not in entity_ids:
                raise err(f"refers to {rel[key]!r}, which is not an entity or event of this document.",
                          f"{field}.{key}", "refer to the id of an entity or event of the same document.")
        _check_normalized(rel.get("normalized") or [], f"{field}.normalized", err)

    if seen_ids is not None:
        for value in local:
            seen_ids[value] = doc_name
    return doc


def _check_offsets(offsets: Any, field: str, err, allow_empty: bool = False) -> None:
    if not isinstance(offsets, list) or (not offsets and not allow_empty):
        raise err("must be a non-empty list of [start, end] pairs.", field)
    for j, pair in enumerate(offsets):
        if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                or not all(isinstance(x, int) and not isinstance(x, bool) for x in pair)):
            raise err(f"{pair!r} is not a [start, end] pair of integers.", f"{field}[{j}]",
                      "write offsets as [[start, end], ...] with integer character positions.")
        if not 0 <= pair[0] <= pair[1]:
            raise err(f"[{pair[0]}, {pair[1]}] is not a span (need 0 <= start <= end).", f"{field}[{j}]",
                      "write offsets as [start, end) character positions, start first.")


def _check_entity_text(ent: dict, field: str, text: str, err) -> None:
    offsets = ent["offsets"]
    _check_offsets(offsets, f"{field}.offsets", err)
    for j, (s, e) in enumerate(offsets):
        if e > len(text):
            raise err(f"offsets [{s}, {e}] end outside the document text ({len(text)} characters).",
                      f"{field}.offsets[{j}]", "offsets index the passages' texts joined by one space; check them.")
    texts = ent["text"]
    texts = [texts] if isinstance(texts, str) else texts
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise err("must be a list of strings.", f"{field}.text")
    found = [text[s:e] for s, e in offsets]
    if len(texts) == len(found):
        pairs = list(zip(texts, found))
    elif len(texts) == 1:
        pairs = [(texts[0], " ".join(found))]
    else:
        raise err(f"has {len(texts)} texts for {len(offsets)} offset pairs.", f"{field}.text",
                  "give one text per [start, end] piece (or one text for the pieces joined by a space).")
    for j, (given, actual) in enumerate(pairs):
        if not same_text(given, actual):
            raise err(f"text {given!r} differs from the document text {actual!r} at its offsets.",
                      f"{field}.text" + (f"[{j}]" if len(pairs) > 1 else ""),
                      "fix the offsets (end is exclusive) or the text; whitespace differences are tolerated.")


def _check_normalized(items: Any, field: str, err) -> None:
    if not isinstance(items, list):
        raise err("must be a list of {db_name, db_id} objects (may be empty).", field)
    for j, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("db_name"), str) or not isinstance(
                item.get("db_id"), str) or not item["db_id"]:
            raise err(f"{item!r} is not a {{db_name, db_id}} object with string values.", f"{field}[{j}]",
                      "write e.g. {\"db_name\": \"HPO\", \"db_id\": \"HP:0001250\"}.")
