"""Cross-lingual candidate generation: sparse (char n-gram TF-IDF) and dense (encoder + FAISS) generators,
per-language routing with English fallback, fusion, filters, and the saved ``CandidateIndex``."""
from .base import CandidateGenerator, pack, route_plan
from .config import normalize_config
from .dense import DenseGenerator
from .filters import SemanticTypeFilter
from .fusion import fuse
from .index import CandidateIndex
from .sparse import SparseGenerator, normalize_text

__all__ = [
    "CandidateGenerator", "CandidateIndex", "DenseGenerator", "SemanticTypeFilter", "SparseGenerator", "fuse",
    "normalize_config", "normalize_text", "pack", "route_plan",
]
