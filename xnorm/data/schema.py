"""The one document model of xnorm: the BigBIO ``kb`` schema as plain dicts.

A document::

    {"id", "document_id", "lang"?,                      # lang: xnorm's optional extension (ISO 639-1)
     "passages":     [{"id", "type", "text": [str], "offsets": [[start, end]]}],
     "entities":     [{"id", "type", "text": [str], "offsets": [[s, e], ...], "normalized": [{"db_name", "db_id"}]}],
     "events":       [{"id", "type", "trigger": {"text": [str], "offsets"}, "arguments": [{"role", "ref_id"}]}],
     "coreferences": [{"id", "entity_ids": [str]}],
     "relations":    [{"id", "type", "arg1_id", "arg2_id", "normalized": [...]}]}

Entity offsets index the document text: each passage's text placed at its own offsets, which for BigBIO data
means the passages' texts joined by one space. Keys that are not part of the schema are kept as they are by every
reader and writer (never dropped silently).
"""
from __future__ import annotations

from typing import Any

DOCUMENT_FIELDS = ("id", "document_id", "passages", "entities", "events", "coreferences", "relations")
LIST_FIELDS = ("passages", "entities", "events", "coreferences", "relations")
PASSAGE_FIELDS = ("id", "type", "text", "offsets")
ENTITY_FIELDS = ("id", "type", "text", "offsets", "normalized")
EVENT_FIELDS = ("id", "type", "trigger", "arguments")
COREFERENCE_FIELDS = ("id", "entity_ids")
RELATION_FIELDS = ("id", "type", "arg1_id", "arg2_id", "normalized")
NORMALIZED_FIELDS = ("db_name", "db_id")
# Top-level keys xnorm itself adds (kept by every format): the document language.
EXTENSION_FIELDS = ("lang",)


def new_document(doc_id: str, passages: list[tuple[str, str]] | None = None, lang: str | None = None) -> dict:
    """An empty kb document; ``passages`` as ``(type, text)`` pairs laid out one space apart."""
    doc: dict[str, Any] = {"id": doc_id, "document_id": doc_id, "passages": [], "entities": [], "events": [],
                           "coreferences": [], "relations": []}
    start = 0
    for i, (ptype, text) in enumerate(passages or []):
        doc["passages"].append({"id": f"{doc_id}_p{i}", "type": ptype, "text": [text],
                                "offsets": [[start, start + len(text)]]})
        start += len(text) + 1
    if lang:
        doc["lang"] = lang
    return doc


def as_list(value: Any) -> list:
    """A text field as a list: BigBIO uses lists, some producers write a bare string."""
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def passage_pieces(doc: dict) -> list[tuple[int, int, str]]:
    """Every ``(start, end, text)`` piece of the passages, as placed by their offsets.

    A passage without offsets is placed one space after the previous piece (the BigBIO convention).
    """
    pieces: list[tuple[int, int, str]] = []
    cursor = 0
    for passage in doc.get("passages") or []:
        texts = as_list(passage.get("text"))
        offsets = passage.get("offsets") or []
        for i, text in enumerate(texts):
            text = "" if text is None else str(text)
            if i < len(offsets) and offsets[i] is not None and len(offsets[i]) == 2:
                start = int(offsets[i][0])
            else:
                start = cursor + (1 if pieces else 0)
            pieces.append((start, start + len(text), text))
            cursor = start + len(text)
    return pieces


def document_text(doc: dict) -> str:
    """The text that entity offsets index: passages at their offsets, gaps filled with spaces."""
    pieces = sorted(passage_pieces(doc))
    out: list[str] = []
    pos = 0
    for start, end, text in pieces:
        if start > pos:
            out.append(" " * (start - pos))
        elif start < pos:  # overlapping passages (the validator reports them); keep the first text
            text = text[pos - start:]
        out.append(text)
        pos = max(pos, end)
    return "".join(out)


def entity_span(entity: dict) -> tuple[int, int]:
    """(first start, last end) over an entity's possibly discontinuous offsets."""
    offsets = entity.get("offsets") or []
    return min(int(o[0]) for o in offsets), max(int(o[1]) for o in offsets)


def kb_features(lang: bool = True):
    """``datasets.Features`` of the BigBIO kb schema (as ``bigbio/utils/schemas/kb.py``), plus ``lang``."""
    import datasets

    string = datasets.Value("string")
    offsets = [datasets.Sequence(datasets.Value("int32"))]
    normalized = [{"db_name": string, "db_id": string}]
    feats = {
        "id": string,
        "document_id": string,
        "passages": [{"id": string, "type": string, "text": datasets.Sequence(string), "offsets": offsets}],
        "entities": [{"id": string, "type": string, "text": datasets.Sequence(string), "offsets": offsets,
                      "normalized": normalized}],
        "events": [{"id": string, "type": string,
                    "trigger": {"text": datasets.Sequence(string), "offsets": offsets},
                    "arguments": [{"role": string, "ref_id": string}]}],
        "coreferences": [{"id": string, "entity_ids": datasets.Sequence(string)}],
        "relations": [{"id": string, "type": string, "arg1_id": string, "arg2_id": string,
                       "normalized": normalized}],
    }
    if lang:
        feats["lang"] = string
    return datasets.Features(feats)
