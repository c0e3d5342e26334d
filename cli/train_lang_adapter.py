"""``xnorm train-lang-adapter``: a MAD-X language adapter trained by masked language modelling on unlabeled text."""
from __future__ import annotations

from pathlib import Path

import click


@click.command("train-lang-adapter")
@click.option("--lang", "language", required=True, help="ISO 639 code of the text's language (es, ja, nna, ...).")
@click.option("--text", "text_files", multiple=True, type=click.Path(path_type=Path),
              help="UTF-8 text file, one document per line (repeatable).")
@click.option("--whole-files", is_flag=True, help="Each --text file is one document (cut into max-length windows).")
@click.option("--terminology", default=None,
              help="Also train on this terminology's names in --lang (a recipe name such as hpo-multilingual, "
                   "a recipe file or a saved terminology folder).")
@click.option("--exclude-ids", type=click.Path(path_type=Path), default=None,
              help="File of concept ids (one per line) whose terminology names are left out (e.g. test concepts).")
@click.option("--base", "base_model", default="multilingual-e5-small", show_default=True,
              help="Base model: a registry name or a Hugging Face BERT-family folder.")
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None, help="Output adapter folder.")
@click.option("--zoo", is_flag=True, help="Write into the user zoo ($XNORM_HOME/adapters/<name>).")
@click.option("--name", default=None, help="Adapter name (default lang-<code>-<base>, e.g. lang-es-e5small).")
@click.option("--steps", type=click.IntRange(min=1), default=500, show_default=True, help="Adapter updates.")
@click.option("--head-steps", type=click.IntRange(min=1), default=None,
              help="MLM-head fitting steps before the adapter trains (default steps/4).")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--max-length", type=click.IntRange(min=8), default=32, show_default=True,
              help="Tokens per training window.")
@click.option("--lr", type=float, default=1e-3, show_default=True, help="Adapter learning rate (AdamW).")
@click.option("--reduction-factor", type=click.IntRange(min=1), default=16, show_default=True,
              help="Bottleneck = hidden size / this.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default=None, help="cpu, cuda, cuda:1 (default: the GPU when present).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
def train_lang_adapter(language: str, text_files: tuple[Path, ...], whole_files: bool, terminology: str | None,
                       exclude_ids: Path | None, base_model: str, output: Path | None, zoo: bool, name: str | None,
                       steps: int, head_steps: int | None, batch_size: int, max_length: int, lr: float,
                       reduction_factor: int, seed: int, device: str | None, no_progress: bool) -> None:
    """Train a language adapter (bottleneck + invertible, MAD-X) on --lang text and save it with a manifest.

    Example: xnorm train-lang-adapter --lang es --terminology hpo-multilingual --text notas.txt --zoo --steps 300
    """
    from xnorm import zoo as zoo_mod
    from xnorm.errors import ConfigError, InputError
    from xnorm.language_adapters import (
        check_language, default_adapter_name, read_text_files, terminology_texts, train_language_adapter,
    )
    from xnorm.models import registry

    check_language(language)
    if output is not None and zoo:
        raise ConfigError("give either -o/--output or --zoo, not both.", field="--zoo",
                          fix="drop one of them.")
    # Cheap input checks first: a missing or empty file must not wait for the model to load.
    texts: list[str] = []
    sources: dict = {}
    for path in text_files:
        docs = read_text_files([path], whole_files=whole_files)
        sources.setdefault("text_files", []).append({"file": path.name, "documents": len(docs),
                                                     "chars": sum(map(len, docs))})
        texts.extend(docs)
    if terminology is not None:
        excluded = None
        if exclude_ids is not None:
            if not exclude_ids.is_file():
                raise InputError("file of concept ids to exclude not found.", file=str(exclude_ids),
                                 fix="check the path.")
            excluded = [ln.strip() for ln in exclude_ids.read_text(encoding="utf-8").splitlines() if ln.strip()]
        names = terminology_texts(terminology, language, exclude_concepts=excluded)
        sources["terminology"] = {"spec": str(terminology), "names": len(names),
                                  "excluded_concepts": len(excluded or [])}
        texts.extend(names)
    if not texts:
        raise InputError("no text to train on.", field="--text",
                         fix="give --text FILE (one document per line) and/or --terminology RECIPE.")

    info = registry.lookup(base_model)
    base_name = info.name if info is not None else str(Path(base_model).expanduser().resolve())
    name = name or default_adapter_name(language, base_name)
    if output is None:
        output = zoo_mod.user_zoo_dir() / name if zoo else Path(name)
    click.echo(f"training {name} on {len(texts):,} texts ({sum(map(len, texts)):,} chars) -> {output}", err=True)
    result = train_language_adapter(
        base_model, language, texts, output, steps=steps, head_steps=head_steps, batch_size=batch_size,
        max_length=max_length, lr=lr, reduction_factor=reduction_factor, seed=seed, device=device, name=name,
        data_description=sources, progress=not no_progress,
    )
    m = result.manifest
    click.echo(f"{result.path}\t{m['adapter_params']:,} adapter params\theld-out MLM loss "
               f"{result.heldout_loss_before:.3f} -> {result.heldout_loss_after:.3f}\t"
               f"{m['training']['seconds_adapter'] + m['training']['seconds_head']:.0f} s")
