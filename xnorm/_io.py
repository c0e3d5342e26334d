"""Small file helpers shared by every writer: atomic writes and checksums."""
from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import IO, Iterator


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def file_record(path: str | os.PathLike) -> dict:
    """What a manifest records of one file: its sha256 and size (a changed or truncated file is told apart)."""
    return {"sha256": sha256_file(path), "size": os.stat(path).st_size}


def _umask() -> int:
    """The process umask, read without changing it where the system allows (Linux: /proc/self/status).

    Elsewhere the only way is to set it and set it back; a thread creating a file in that instant would get an
    unmasked mode, so that is done once per process and the value kept.
    """
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return _umask_once()


@functools.lru_cache(maxsize=1)
def _umask_once() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", encoding: str | None = "utf-8") -> Iterator[IO]:
    """Open a temporary file beside ``path``; rename it onto ``path`` only if the block finishes.

    An interrupted or failed write leaves no partial output behind (the temp file is removed).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it 0600; the output gets the usual permissions
        with os.fdopen(fd, mode, encoding=None if "b" in mode else encoding) as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def exclusive_lock(lock_path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path`` so that two processes do not build the same folder at once."""
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as fh:
        try:
            import fcntl
        except ImportError:  # not POSIX: atomic_dir's rename still keeps the folder whole
            yield
            return
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Build a folder under a temporary name beside ``path``; swap it in only if the block finishes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it 0700: others could not read a shared index or model
        yield tmp
        if path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def read_yaml_mapping(path: str | os.PathLike, what: str = "config") -> dict:
    """The YAML mapping in ``path``; a missing file, a syntax error (with its line) or a non-mapping is a
    ``ConfigError`` that says so."""
    import yaml

    from .errors import ConfigError

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} file not found.", file=str(path), fix="check the path.")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        raise ConfigError(f"not valid YAML ({getattr(e, 'problem', None) or e}).", file=str(path),
                          line=mark.line + 1 if mark else None, fix="fix the YAML syntax.") from None
    if not isinstance(data, dict):
        raise ConfigError("expected a mapping of keys to values at the top level.", file=str(path),
                          fix=f"write the {what} as `key: value` lines.")
    return data


def read_folder_manifest(folder: str | os.PathLike, fmt: str, version: int, *, what: str, fix: str,
                         error: type | None = None) -> dict:
    """The ``manifest.json`` of a folder xnorm wrote, checked for its format and version.

    Every saved folder (terminology, index, linker, adapter, partitioned output) is read through here, so the
    errors read alike: ``what`` names the kind of folder, ``fix`` says how to get a good one, and ``error``
    is ``ArtifactError`` (default) or ``InputError`` for folders that are a command's input.
    """
    from .errors import ArtifactError

    error = error or ArtifactError
    folder = Path(folder)
    mf = folder / "manifest.json"
    if not mf.is_file():
        raise error(f"no manifest.json: not {what}.", file=str(folder), fix=fix)
    try:
        manifest = json.loads(mf.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise error(f"manifest is not valid JSON ({e.msg}).", file=str(mf), line=e.lineno, fix=fix) from None
    if not isinstance(manifest, dict) or manifest.get("format") != fmt:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise error(f"expected format {fmt!r}, found {found!r}.", file=str(mf), field="format", fix=fix)
    if manifest.get("format_version") != version:
        raise error(f"format version {manifest.get('format_version')!r} is not the one this xnorm reads "
                    f"({version}).", file=str(mf), field="format_version", fix=fix)
    return manifest
