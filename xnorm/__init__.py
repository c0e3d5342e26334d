"""xnorm: multilingual, domain-specialist medical entity normalization."""
from __future__ import annotations

__version__ = "0.1.0"

from .errors import XnormError  # noqa: E402
from .terminology.core import Terminology, TerminologyBuilder  # noqa: E402
from .types import Candidates, Mentions  # noqa: E402
from .linker import Linker, LinkerConfig  # noqa: E402

__all__ = ["__version__", "XnormError", "Terminology", "TerminologyBuilder", "Candidates", "Mentions", "Linker",
           "LinkerConfig"]
