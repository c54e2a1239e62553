#!/usr/bin/env bash
# Refresh requirements.lock: every package that `pip install -e ".[test]"` installs, pinned
# to one exact version, for Python 3.11 on x86-64 Linux. ./dev.sh installs from it (as pip
# constraints), so a fresh clone gets the same releases as the run that made the cached numbers.
#
#   tools/lock_deps.sh                          # after editing dependencies in pyproject.toml:
#                                               #   adds/drops packages, keeps every other pin
#   tools/lock_deps.sh --upgrade                # move every package to its newest release
#   tools/lock_deps.sh --upgrade-package numpy  # move one package (repeatable)
#   tools/lock_deps.sh --torch 2.14.1+cpu       # move torch (a CPU build: "+cpu" is required)
#
# Arguments other than --torch go to pip-compile (pip-tools). The torch pin is kept from the
# current lock unless --torch says otherwise; it is passed to pip-compile as a constraint, so
# the resolver never picks a CUDA torch. The CPU wheel is looked up on the package indexes
# pip is configured with (a local wheel folder on the project's machines) and, when they do
# not have it, on the PyTorch CPU index ($TORCH_INDEX_URL overrides it).
# No hashes: the CPU torch wheel comes from different places on different machines, and
# pip's hash-checking mode is all-or-nothing and refuses the editable install of this package.
set -euo pipefail
cd "$(dirname "$0")/.."

LOCK=requirements.lock
PIP_TOOLS="pip-tools==7.7.0 pip==26.3"
TORCH_CPU_INDEX="${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}"
TOOLS_VENV="${PARTSTAD_LOCK_TOOLS_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/partstad/lock-tools}"

torch=""
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --torch) torch="${2:?--torch needs a version, e.g. 2.13.0+cpu}"; shift 2 ;;
    --torch=*) torch="${1#--torch=}"; shift ;;
    *) args+=("$1"); shift ;;
  esac
done
if [ -z "$torch" ]; then
  torch=$(sed -n 's/^torch==\([^ ]*\)$/\1/p' "$LOCK" 2>/dev/null | head -n1)
fi
case "$torch" in
  *+cpu) ;;
  *) echo "lock_deps: torch pin '${torch}' is not a CPU build; pass --torch <version>+cpu" >&2; exit 2 ;;
esac

# pip-tools in its own venv (pinned: pip-tools depends on pip internals).
py="${PYTHON:-python3}"
"$py" -c 'import platform, sys; assert sys.version_info[:2] == (3, 11) and sys.platform == "linux" and platform.machine() == "x86_64", "the lock is for Python 3.11 on x86-64 Linux"'
if [ ! -f "$TOOLS_VENV/.ok-${PIP_TOOLS// /-}" ]; then
  rm -rf "$TOOLS_VENV"
  "$py" -m venv "$TOOLS_VENV"
  # shellcheck disable=SC2086
  "$TOOLS_VENV/bin/pip" install -q $PIP_TOOLS 2>&1 | sed '/is ignored/d'
  touch "$TOOLS_VENV/.ok-${PIP_TOOLS// /-}"
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "torch==$torch" > "$tmp/torch-cpu.txt"

# Is the CPU wheel on the configured indexes? If not, add the PyTorch CPU index.
extra=()
if ! "$TOOLS_VENV/bin/pip" install -q --dry-run --no-deps --ignore-installed "torch==$torch" >/dev/null 2>&1; then
  echo "lock_deps: torch==$torch is not on the configured package indexes; adding $TORCH_CPU_INDEX" >&2
  extra=(--extra-index-url "$TORCH_CPU_INDEX")
fi

# --strip-extras: the lock is also used as a pip constraints file, which cannot hold extras.
# --allow-unsafe: pin setuptools too (torch requires it at run time).
# --no-emit-*: the index/wheel-folder settings belong to each machine's pip config, not the lock.
CUSTOM_COMPILE_COMMAND="tools/lock_deps.sh" "$TOOLS_VENV/bin/pip-compile" \
  --quiet --strip-extras --allow-unsafe --extra test \
  --no-emit-index-url --no-emit-find-links --no-emit-trusted-host \
  --constraint "$tmp/torch-cpu.txt" ${extra[@]+"${extra[@]}"} \
  --output-file "$LOCK" ${args[@]+"${args[@]}"} pyproject.toml \
  2>&1 | sed '/is ignored/d'

# The constraint file lived in $tmp: name it by what it is, not by a path that is gone.
sed -i "s|-c $tmp/torch-cpu.txt|torch CPU pin (tools/lock_deps.sh --torch)|" "$LOCK"
grep -q "^torch==$torch\$" "$LOCK" || { echo "lock_deps: $LOCK does not pin torch==$torch" >&2; exit 1; }
echo "wrote $LOCK: $(grep -c '^[A-Za-z0-9].*==' "$LOCK") pinned packages, torch==$torch"
