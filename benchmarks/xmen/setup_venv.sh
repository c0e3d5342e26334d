#!/usr/bin/env bash
# Creates xMEN 1.0.8's own virtual environment, outside the repository by default, following
# /work/shared/ENVIRONMENT.md: xMEN declares Python <3.11 and pins datasets<3, sentence-transformers<3,
# scispacy<0.6 and numpy<2, so it cannot share xnorm's environment. Idempotent: an existing venv whose
# `pip freeze` already matches requirements.lock is left alone.
#
#   XMEN_VENV=/some/dir bash benchmarks/xmen/setup_venv.sh      # default: ~/.cache/xnorm-bench/xmen-venv
#   XMEN_PYTHON=python3.11 ...                                 # interpreter to build the venv from
#   XMEN_RESOLVE=1 ...                                         # re-resolve the ranges and rewrite the lock
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${XMEN_VENV:-$HOME/.cache/xnorm-bench/xmen-venv}"
PY="${XMEN_PYTHON:-python3}"
LOCK="$HERE/requirements.lock"

# xMEN 1.0.8's declared dependencies (its METADATA), with the substitutions that make them install on 3.11:
# faiss-cpu instead of faiss-gpu, pyarrow<26 (26.x fails to import with numpy<2), scipy==1.10.1.
# torch is pinned first: a plain `torch` or a range admitting a newer one pulls a multi-GB CUDA build.
RANGES=(
  "torch==2.13.0"
  "datasets>=2.0.0,<3.0.0" "faiss-cpu>=1.7.1,<2.0.0" "langcodes>=3.3.0,<4.0.0" "lxml>=4.8.0,<5.0.0"
  "neleval>=3.1.1,<4.0.0" "numpy>=1.21,<2.0" "omegaconf>=2.3.0,<3.0.0" "orjson>=3.9.1,<4.0.0"
  "protobuf>=3.20.0,<4.0.0" "rich>=12.3.0,<13.0.0" "scispacy>=0.5.2,<0.6.0"
  "sentence-transformers>=2.2.2,<3.0.0" "sentencepiece>=0.1.96,<0.2.0" "transformers>=4.17.0,<5.0.0"
  "pyarrow<26" "scipy==1.10.1"
)
# xMEN pins pytorch-metric-learning==0.9.98.dev1 (not on PyPI; 0.9.98 is that release). --no-deps: its
# unpinned torchvision would pull a CUDA torch. xMEN imports it only for SapBERT training, not for linking.
PML="pytorch-metric-learning==0.9.98"
XMEN="xmen==1.0.8"

if [[ -x "$VENV/bin/python" && -f "$LOCK" && -z "${XMEN_RESOLVE:-}" ]]; then
  if diff -q <("$VENV/bin/pip" freeze --all --exclude-editable | grep -v -E '^(pip|setuptools|wheel)==' | sort -f) \
             <(grep -v '^#' "$LOCK" | sort -f) >/dev/null; then
    "$VENV/bin/python" -c "import xmen.linkers" && { echo "xMEN venv up to date: $VENV"; exit 0; }
  fi
fi

mkdir -p "$(dirname "$VENV")"
[[ -x "$VENV/bin/python" ]] || "$PY" -m venv "$VENV"
PIP=("$VENV/bin/pip" install --disable-pip-version-check -q)

"${PIP[@]}" "torch==2.13.0"
"${PIP[@]}" --no-deps --ignore-requires-python "$XMEN"
if [[ -f "$LOCK" && -z "${XMEN_RESOLVE:-}" ]]; then
  # Every version pinned: the lock (minus the three no-deps packages) installs without resolving anew.
  grep -v '^#' "$LOCK" | grep -v -i -E '^(xmen|pytorch-metric-learning|torch)==' > "$VENV/lock.txt"
  "${PIP[@]}" -r "$VENV/lock.txt"
else
  "${PIP[@]}" "${RANGES[@]}"
fi
"${PIP[@]}" --no-deps "$PML"

"$VENV/bin/python" -c "import xmen, xmen.linkers, faiss, scispacy; print('xmen', xmen.__name__, 'ok')"
if [[ ! -f "$LOCK" || -n "${XMEN_RESOLVE:-}" ]]; then
  { echo "# pip freeze of the xMEN venv made by setup_venv.sh (Python $("$VENV/bin/python" -c 'import platform; print(platform.python_version())'))";
    "$VENV/bin/pip" freeze --all --exclude-editable | grep -v -E '^(pip|setuptools|wheel)==' | sort -f; } > "$LOCK"
  echo "wrote $LOCK"
fi
echo "xMEN venv ready: $VENV"
