"""Abbreviation long forms from scispaCy's ``AbbreviationDetector`` (Schwartz & Hearst), with no model download.

The detector runs on ``spacy.blank("en")`` plus a sentencizer. It finds definitions such as
"ventricular septal defect (VSD)" and marks every later use of the short form in the same document, so a
mention "VSD" can also be queried as "ventricular septal defect" (``Mentions.long_forms``).
"""
from __future__ import annotations

import contextlib
import warnings
from functools import lru_cache
from typing import Iterable, Sequence

import numpy as np

from ..data.schema import document_text
from ..types import Mentions


@lru_cache(maxsize=1)
def _pipeline():
    import spacy
    from scispacy.abbreviation import AbbreviationDetector  # noqa: F401  (registers "abbreviation_detector")

    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.add_pipe("abbreviation_detector")
    return nlp


def detect_abbreviations(texts: Iterable[str], batch_size: int = 32) -> list[dict[tuple[int, int], str]]:
    """For each text: ``{(start, end) of a short-form occurrence: its long form}`` (character offsets)."""
    texts = [str(t) for t in texts]
    out: list[dict[tuple[int, int], str]] = [{} for _ in texts]
    # The detector only reads definitions around a "(" token: texts without one are skipped, and when no text has
    # one spaCy is never imported (~3 s of a short `xnorm link` run).
    todo = [i for i, t in enumerate(texts) if "(" in t]
    if todo:
        with quiet_w036():
            for i, doc in zip(todo, _pipeline().pipe((texts[i] for i in todo), batch_size=batch_size)):
                out[i] = {(a.start_char, a.end_char): a._.long_form.text for a in doc._.abbreviations}
    return out


@contextlib.contextmanager
def quiet_w036():
    """Drop spaCy's W036 ("matcher has no patterns"), which scispaCy's detector triggers on every run: its
    global matcher is empty by design. spaCy installs its own "once" filter in front of ours when it warns,
    so the warning is recorded here and every other warning is passed on."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        if "[W036]" not in str(w.message):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def long_forms_for_documents(docs: Sequence[dict]) -> list[dict[str, str]]:
    """For each document: ``{short form text: long form}`` of the abbreviations it defines."""
    texts = [document_text(d) for d in docs]
    return [{text[s:e]: long for (s, e), long in spans.items()}
            for text, spans in zip(texts, detect_abbreviations(texts))]


def fill_long_forms(docs: Sequence[dict], mentions: Mentions) -> Mentions:
    """Set ``mentions.long_forms`` (where still empty) for mentions that are abbreviations defined in their document.

    A mention is matched to its document through ``mentions.doc_ids`` (BigBIO ``document_id`` or ``id``) and to
    a short form by its text. Returns ``mentions`` (changed in place).
    """
    per_doc = long_forms_for_documents(docs)
    by_key: dict[str, dict[str, str]] = {}
    for doc, forms in zip(docs, per_doc):
        for key in (doc.get("document_id"), doc.get("id")):
            if key is not None:
                by_key.setdefault(str(key), forms)
    for i, (doc_id, text) in enumerate(zip(mentions.doc_ids, mentions.texts)):
        if mentions.long_forms[i]:
            continue
        long = by_key.get(str(doc_id), {}).get(str(text).strip())
        if long and long.strip().casefold() != str(text).strip().casefold():
            mentions.long_forms[i] = long
    return mentions


def expand_mentions(mentions: Mentions) -> tuple[np.ndarray, Mentions]:
    """Rows that have a long form, and a ``Mentions`` batch of those rows with the long form as text."""
    rows = np.flatnonzero([bool(x) for x in mentions.long_forms])
    sub = mentions[rows]
    sub.texts = np.asarray(sub.long_forms, dtype=object).copy()
    sub.long_forms = np.asarray([""] * len(rows), dtype=object)
    return rows, sub
