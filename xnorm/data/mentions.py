"""From kb documents to a ``Mentions`` batch for the linker, and predictions back into the documents."""
from __future__ import annotations

import bisect
from typing import Any, Sequence

import numpy as np

from ..types import Mentions
from .schema import as_list, document_text, passage_pieces


def mentions_from_documents(docs: Sequence[dict], default_lang: str = "en",
                            context_chars: int = 100) -> tuple[Mentions, np.ndarray]:
    """One mention per entity of ``docs`` (a chunk, e.g. 256 documents) and its ``refs``.

    ``refs[i] = (document index in docs, entity index in that document)``: an ``[n, 2]`` int array that
    :func:`set_predictions` uses to write results back. Mention text: the entity's text pieces joined by a
    space; language: the document's ``lang``, else ``default_lang``; context: up to ``context_chars`` characters
    left and right of the span, within the passage that holds it (0 = no context).
    """
    texts, langs, doc_ids, entity_ids, types, lefts, rights = [], [], [], [], [], [], []
    refs: list[tuple[int, int]] = []
    for d, doc in enumerate(docs):
        entities = doc.get("entities") or []
        if not entities:
            continue
        lang = doc.get("lang") or default_lang
        doc_id = str(doc.get("document_id") or doc.get("id"))
        text = document_text(doc) if context_chars > 0 else ""
        pieces = sorted(passage_pieces(doc)) if context_chars > 0 else []
        starts = [p[0] for p in pieces]
        for e, ent in enumerate(entities):
            refs.append((d, e))
            texts.append(" ".join(as_list(ent.get("text"))))
            langs.append(lang)
            doc_ids.append(doc_id)
            entity_ids.append(str(ent.get("id", "")))
            types.append(str(ent.get("type", "")))
            offsets = ent.get("offsets") or []
            if context_chars <= 0 or not offsets:
                lefts.append("")
                rights.append("")
                continue
            s = min(int(o[0]) for o in offsets)
            end = max(int(o[1]) for o in offsets)
            # The passage holding the mention start bounds the context window.
            k = bisect.bisect_right(starts, s) - 1
            lo, hi = (pieces[k][0], pieces[k][1]) if k >= 0 else (0, len(text))
            lefts.append(text[max(lo, s - context_chars):s])
            rights.append(text[end:min(max(hi, end), end + context_chars)])
    mentions = Mentions(texts=texts, langs=langs, doc_ids=doc_ids, entity_ids=entity_ids, types=types,
                        left=lefts, right=rights)
    return mentions, np.asarray(refs, dtype=np.int64).reshape(-1, 2)


def gold_ids(docs: Sequence[dict], refs: np.ndarray, field: str = "normalized") -> list[list[str]]:
    """Per referenced entity (:func:`mentions_from_documents`' ``refs``), the ``db_id`` strings of its ``field``
    (the gold annotations), in order; ``[]`` for an entity without any."""
    return [[str(n.get("db_id")) for n in docs[d]["entities"][e].get(field) or [] if n.get("db_id")]
            for d, e in refs]


def set_predictions(docs: Sequence[dict], refs: np.ndarray, ids: np.ndarray, scores: np.ndarray | None = None,
                    field: str = "normalized", db_name: str | Sequence[str] = "",
                    extra: np.ndarray | None = None) -> Sequence[dict]:
    """Set each referenced entity's ``field`` to its ranked predictions ``[{db_name, db_id, score}, ...]``.

    ``ids[n, k]``: concept ids, ``None`` (or "") for an empty slot; ``scores[n, k]``: ``-inf`` (or NaN) marks an
    empty slot too. Rows are ranked, best first; empty slots are skipped, so a NIL mention gets ``[]``.
    ``db_name``: one name, or one per mention. ``extra[n, k]`` (optional): a dict merged into each prediction
    (e.g. the matched name). Changes ``docs`` in place and returns them.
    """
    refs = np.asarray(refs).reshape(-1, 2)
    ids = np.asarray(ids, dtype=object)
    if ids.ndim == 1:
        ids = ids[:, None]
    if ids.shape[0] != len(refs):
        raise ValueError(f"{ids.shape[0]} prediction rows for {len(refs)} mentions")
    score_arr = None if scores is None else np.asarray(scores, dtype=np.float64).reshape(ids.shape)
    names = [db_name] * len(refs) if isinstance(db_name, str) else list(db_name)
    empty = np.vectorize(lambda x: x is None or x == "", otypes=[bool])(ids) if ids.size else np.zeros(ids.shape, bool)
    if score_arr is not None:
        empty |= ~np.isfinite(score_arr) & ~np.isposinf(score_arr)
    for i, (d, e) in enumerate(refs):
        preds: list[dict[str, Any]] = []
        for j in np.flatnonzero(~empty[i]):
            item: dict[str, Any] = {"db_name": names[i], "db_id": str(ids[i, j])}
            if score_arr is not None:
                item["score"] = float(score_arr[i, j])
            if extra is not None and isinstance(extra[i, j], dict):
                item.update(extra[i, j])
            preds.append(item)
        docs[int(d)]["entities"][int(e)][field] = preds
    return docs
