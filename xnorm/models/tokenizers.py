"""Tokenizers shared within a process: one object per distinct set of tokenizer files.

The embedded e5-small's XLM-R tokenizer takes ~290 MB of memory once loaded; a linker whose dense generator,
distilled query encoder and reranker all sit on that base used to hold three identical copies. Tokenizers are keyed
by the sha256 of their files, so a student folder that carries a copy of its base's tokenizer shares it too, and
held weakly: the last encoder or reranker that uses one frees it. Nothing in xnorm changes a tokenizer after
loading, but each call of a fast tokenizer first sets its truncation / padding: two threads calling one tokenizer
with different settings (an index encoder's and a reranker's) collide ("Already borrowed"), so every call in xnorm
holds the tokenizer's ``call_lock``.
"""
from __future__ import annotations

import hashlib
import threading
import weakref
from pathlib import Path
from typing import Any

# every file a Hugging Face tokenizer may read from its folder
_FILE_PREFIXES = ("tokenizer", "special_tokens_map", "added_tokens", "vocab", "merges", "sentencepiece", "spiece")
_shared: "weakref.WeakValueDictionary[str, Any]" = weakref.WeakValueDictionary()
_lock = threading.Lock()
_call_locks: "weakref.WeakKeyDictionary[Any, threading.Lock]" = weakref.WeakKeyDictionary()


def _key(source: str) -> str:
    folder = Path(source)
    if not folder.is_dir():
        return f"hub:{source}"
    digest = hashlib.sha256()
    for f in sorted(p for p in folder.iterdir() if p.is_file() and p.name.startswith(_FILE_PREFIXES)):
        digest.update(f.name.encode() + b"\0")
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def tokenizer_sha256(source: str | Path) -> str:
    """The sha256 of a model folder's tokenizer files (``hub:<id>`` for a hub id): what identifies a tokenizer."""
    return _key(str(source))


def load_tokenizer(source: str | Path) -> Any:
    """The tokenizer of a model folder or hub id, shared with every other user of identical tokenizer files."""
    from transformers import AutoTokenizer

    key = _key(str(source))
    with _lock:  # one load per key, even when two threads ask at once
        tokenizer = _shared.get(key)
        if tokenizer is None:
            # fix_mistral_regex=False: transformers 4.57.3+ warns about an "incorrect regex pattern" for every local
            # folder whose config.json was written by a 4.57.x release, mistral or not. Our tokenizers are BERT
            # WordPiece / XLM-R Unigram (no such regex; ids were checked identical to transformers 5), so the
            # warning is spurious and the flag changes nothing but the log.
            tokenizer = AutoTokenizer.from_pretrained(str(source), trust_remote_code=False, fix_mistral_regex=False)
            _shared[key] = tokenizer
    return tokenizer


def call_lock(tokenizer: Any) -> threading.Lock:
    """The lock to hold around a call of ``tokenizer`` (one per tokenizer object, shared or not)."""
    with _lock:
        lock = _call_locks.get(tokenizer)
        if lock is None:
            lock = _call_locks[tokenizer] = threading.Lock()
    return lock


def shared_count() -> int:
    """How many distinct tokenizers this process holds (for tests and memory reports)."""
    return len(_shared)
