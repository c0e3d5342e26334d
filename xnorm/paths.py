"""Where xnorm keeps what it builds once and reuses: materialized models, cached indexes."""
from __future__ import annotations

import os
from pathlib import Path


def xnorm_home() -> Path:
    """``$XNORM_HOME``, else ``$XDG_CACHE_HOME/xnorm``, else ``~/.cache/xnorm``."""
    if os.environ.get("XNORM_HOME"):
        return Path(os.environ["XNORM_HOME"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "xnorm"


def models_dir() -> Path:
    return xnorm_home() / "models"


def indexes_dir() -> Path:
    return xnorm_home() / "indexes"
