#!/usr/bin/env bash
# One entry point for the two set-up commands of the README:
#   ./dev.sh demo   -> create .venv, install, run the whole pipeline (`dvc repro`) on the synthetic demo
#   ./dev.sh test   -> create .venv, install, run the test suite
# Idempotent: the install is skipped when pyproject.toml has not changed since the last one.
set -euo pipefail
cd "$(dirname "$0")"
export DVC_NO_ANALYTICS=1 PYOPENGL_PLATFORM="${PYOPENGL_PLATFORM:-egl}" OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"

bootstrap() {
  local py="${PYTHON:-python3}"
  if [ ! -x .venv/bin/python ]; then
    "$py" -m venv .venv
  fi
  local stamp=.venv/.installed-$(sha1sum pyproject.toml | cut -c1-12)
  if [ ! -f "$stamp" ]; then
    # Every install must succeed (set -e + pipefail): a failed install stops here, loudly.
    # sed only drops pip's harmless "Location ... is ignored" notes and always exits 0.
    .venv/bin/pip install -q --upgrade pip 2>&1 | sed '/is ignored/d'
    # torch first and pinned: an unpinned torch pulls several GB of CUDA packages.
    .venv/bin/pip install -q "torch==2.13.0" 2>&1 | sed '/is ignored/d'
    .venv/bin/pip install -q -e ".[test]" 2>&1 | sed '/is ignored/d'
    # Every required and test dependency must import (pyrender needs EGL; see STACK.md).
    .venv/bin/python -c "import transformers, torch, zarr, dask, trimesh, pyrender, click, dvc, pydantic, filelock, safetensors; from pipeline.segment.sam import _import_segment_anything; _import_segment_anything()"
    touch "$stamp"
  fi
}

case "${1:-}" in
  demo)
    bootstrap
    shift
    PATH="$PWD/.venv/bin:$PATH" .venv/bin/dvc repro "$@"
    echo "Done: metrics in metrics/, report in reports/index.html"
    ;;
  test)
    bootstrap
    shift
    PATH="$PWD/.venv/bin:$PATH" .venv/bin/python -m pytest "$@"
    ;;
  *)
    echo "usage: ./dev.sh demo|test [args]" >&2
    exit 2
    ;;
esac
