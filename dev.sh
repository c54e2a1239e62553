#!/usr/bin/env bash
# One entry point for the two set-up commands of the README:
#   ./dev.sh demo   -> create .venv, install, run the whole pipeline (`dvc repro`) on the synthetic demo
#   ./dev.sh test   -> create .venv, install, run the gates (ruff check, ruff format --check,
#                      mypy; configured in pyproject.toml), then the test suite
#   ./dev.sh lint   -> the gates only
# Both install from requirements.lock (exact versions of every package, CPU torch included;
# refresh it with tools/lock_deps.sh). Idempotent: the install is skipped when neither
# pyproject.toml nor requirements.lock has changed since the last one.
set -euo pipefail
cd "$(dirname "$0")"
export DVC_NO_ANALYTICS=1 PYOPENGL_PLATFORM="${PYOPENGL_PLATFORM:-egl}" OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
LOCK=requirements.lock
# Where the CPU torch wheel comes from when the configured package indexes do not have it.
TORCH_CPU_INDEX="${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}"

bootstrap() {
  local py="${PYTHON:-python3}"
  if [ ! -x .venv/bin/python ]; then
    "$py" -m venv .venv
  fi
  local stamp=.venv/.installed-$(cat pyproject.toml "$LOCK" | sha1sum | cut -c1-12)
  if [ ! -f "$stamp" ]; then
    # Every install must succeed (set -e + pipefail): a failed install stops here, loudly.
    # sed only drops pip's harmless "Location ... is ignored" notes and always exits 0.
    .venv/bin/pip install -q --upgrade pip 2>&1 | sed '/is ignored/d'
    # torch first, at the lock's pin (torch==<version>+cpu, the CPU build; an unpinned torch
    # pulls several GB of CUDA packages). The "+cpu" pin cannot match a CUDA wheel: where
    # the configured indexes lack it, it fails fast and comes from the PyTorch CPU index.
    local out
    if ! out=$(.venv/bin/pip install -q -c "$LOCK" torch 2>&1); then
      echo "dev.sh: $(grep '^torch==' "$LOCK") is not on the configured package indexes" \
        "($(printf '%s\n' "$out" | grep -m1 '^ERROR' || true)); trying $TORCH_CPU_INDEX" >&2
      .venv/bin/pip install -q -c "$LOCK" torch --extra-index-url "$TORCH_CPU_INDEX" 2>&1 | sed '/is ignored/d'
    else
      printf '%s\n' "$out" | sed '/is ignored/d; /^$/d'
    fi
    # Then this package and its test extras, every version fixed by the lock.
    .venv/bin/pip install -q -c "$LOCK" -e ".[test]" 2>&1 | sed '/is ignored/d'
    # Every required and test dependency must import (pyrender needs EGL; see docs/stack.md).
    .venv/bin/python -c "import transformers, torch, zarr, dask, trimesh, pyrender, click, dvc, pydantic, filelock, safetensors; from pipeline.segment.sam import _import_segment_anything; _import_segment_anything()"
    touch "$stamp"
  fi
}

# The report's browser test drives Debian's Chromium (a browser downloaded by a test tool is not
# reachable on the project's machines). Installed like any other test dependency; when it
# cannot be (no apt, not root and no password-less sudo, no package index), say so loudly
# and go on: that one test is then skipped with the same reason, every other test runs.
CHROMIUM="${PARTSTAD_CHROMIUM:-/usr/bin/chromium}"
ensure_browser() {
  [ -x "$CHROMIUM" ] && { export PARTSTAD_REQUIRE_BROWSER=1; return 0; }
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo -n"; else sudo="none"; fi
  fi
  if [ "$sudo" != none ] && command -v apt-get >/dev/null; then
    echo "dev.sh: installing Chromium (Debian package chromium) for the report's browser test" >&2
    if $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/tmp/partstad-apt.log 2>&1 \
      || { $sudo apt-get update -qq >>/tmp/partstad-apt.log 2>&1 \
           && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >>/tmp/partstad-apt.log 2>&1; }; then
      [ -x "$CHROMIUM" ] && { export PARTSTAD_REQUIRE_BROWSER=1; return 0; }
    fi
  fi
  echo "dev.sh: WARNING: no Chromium at $CHROMIUM and it could not be installed (see /tmp/partstad-apt.log;" \
    "apt-get install chromium, or set PARTSTAD_CHROMIUM): the report's browser test will be skipped" >&2
}

# Lint, format and type gates: zero findings, or the command fails before any test runs.
gates() {
  echo "gates: ruff check, ruff format --check, mypy" >&2
  .venv/bin/ruff check --quiet .
  .venv/bin/ruff format --check --quiet .
  .venv/bin/mypy --no-error-summary
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
    gates
    ensure_browser
    PATH="$PWD/.venv/bin:$PATH" .venv/bin/python -m pytest "$@"
    ;;
  lint)
    bootstrap
    gates
    ;;
  *)
    echo "usage: ./dev.sh demo|test|lint [args]" >&2
    exit 2
    ;;
esac
