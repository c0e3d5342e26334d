"""A bounded cache of candidate rows across batches: a text seen before is not encoded or searched again.

Corpora repeat their mentions across documents far beyond one batch ("seizures" in hundreds of abstracts). The
generators already search each distinct (language, text) of a batch once; this cache carries their rows over to
later batches. Least recently used rows are dropped once the rows held exceed ``max_bytes``.

Rows are only valid for the generator state that made them: a generator clears the cache when it is fitted,
loaded or given another query encoder; keys hold the generator's name and every argument that shapes a row.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Hashable, Sequence

import numpy as np

from ..types import Candidates

# Bytes counted per cached row beyond its arrays' data: the key, four array headers, the tuple and the dict slot.
ROW_OVERHEAD = 600


def row_bytes(k: int) -> int:
    """What one cached row of ``k`` slots counts against the bound (int32 + float32 + int32 + int8 per slot)."""
    return k * 13 + ROW_OVERHEAD


class RowCache:
    """Least-recently-used candidate rows by key, at most ``max_bytes`` (counted as data + ``ROW_OVERHEAD``)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = int(max_bytes)
        self._rows: OrderedDict[Hashable, tuple[np.ndarray, ...]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()  # a linker may serve several threads
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def nbytes(self) -> int:
        return self._bytes

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()
            self._bytes = 0

    def get(self, keys: Sequence[Hashable], k: int, source: str) -> tuple[np.ndarray, Candidates]:
        """(found[n] bool, Candidates[n, k]) with the cached rows filled in where found (empty rows elsewhere)."""
        out = Candidates.empty(len(keys), k, source)
        found = np.zeros(len(keys), dtype=bool)
        with self._lock:
            for i, key in enumerate(keys):
                row = self._rows.get(key)
                if row is None:
                    continue
                self._rows.move_to_end(key)
                out.concepts[i], out.scores[i], out.names[i], out.routes[i] = row
                found[i] = True
            self.hits += int(found.sum())
            self.misses += len(keys) - int(found.sum())
        return found, out

    def put(self, keys: Sequence[Hashable], rows: Candidates) -> None:
        """Store row i of ``rows`` under ``keys[i]``, dropping the least recently used rows beyond the bound."""
        if self.max_bytes <= 0:
            return
        size = row_bytes(rows.shape[1])
        with self._lock:
            for i, key in enumerate(keys):
                if key not in self._rows:
                    self._bytes += size
                self._rows[key] = (rows.concepts[i].copy(), rows.scores[i].copy(), rows.names[i].copy(),
                                   rows.routes[i].copy())
                self._rows.move_to_end(key)
            while self._bytes > self.max_bytes and self._rows:
                _, old = self._rows.popitem(last=False)
                self._bytes -= row_bytes(len(old[0]))
