"""Language of a document's text, for documents that do not say (`xnorm link --lang auto`).

langdetect (Google's language-detection profiles, JSON, no pickles) is reliable on sentences and paragraphs, not
on a single short mention, so xnorm detects per document from all of its text. Seeded: the same text always gets
the same answer.
"""
from __future__ import annotations

from functools import lru_cache


@lru_cache(maxsize=1)
def _factory():
    from langdetect import DetectorFactory

    DetectorFactory.seed = 0  # langdetect samples n-grams at random; fix it for reproducible output
    return DetectorFactory


def detect_language(text: str, default: str = "en") -> str:
    """ISO 639-1 code of ``text`` (``zh-cn`` / ``zh-tw`` → ``zh``), ``default`` when there is nothing to detect."""
    from langdetect import detect
    from langdetect.lang_detect_exception import LangDetectException

    _factory()
    if not text or not text.strip():
        return default
    try:
        code = detect(text)
    except LangDetectException:  # no letters (numbers, punctuation only)
        return default
    return code.split("-")[0]
