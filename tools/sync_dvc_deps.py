"""Rewrite the code deps of every dvc.yaml stage from the real import graph.

Run after adding or moving a module: ``python tools/sync_dvc_deps.py`` (``--check`` only
reports). tests/stages/test_dvc_yaml.py fails when dvc.yaml and the imports disagree. A
package directory is listed whole when the stage imports every module in it.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stages.keys import REPO_ROOT, _module_file, module_closure  # noqa: E402

DVC_YAML = REPO_ROOT / "dvc.yaml"


def code_deps(stage: str) -> list[str]:
    """Sorted repo-relative code deps of ``stages.<stage>``, whole packages collapsed."""
    files = {str(_module_file(m).relative_to(REPO_ROOT)) for m in module_closure(f"stages.{stage}")}
    out: set[str] = set()
    for f in files:
        parent = Path(f).parent
        best = f
        while parent != Path(".") and parent.name not in ("pipeline", "stages"):
            members = {str(p.relative_to(REPO_ROOT)) for p in (REPO_ROOT / parent).rglob("*.py")}
            if members <= files:
                best = str(parent)
            parent = parent.parent
        out.add(best)
    return sorted(out)


def sync(text: str) -> str:
    """dvc.yaml text with each stage's pipeline/ and stages/ deps replaced by the computed ones."""
    lines = text.splitlines(keepends=True)
    out: list[str] = []
    stage = None
    i = 0
    while i < len(lines):
        line = lines[i]
        m = re.match(r"^  ([A-Za-z_][\w-]*):\s*$", line)
        if m:
            stage = m.group(1)
        out.append(line)
        dm = re.match(r"^(\s+)deps:\s*$", line)
        if dm and stage:
            indent = dm.group(1) + "  "
            i += 1
            rest = []
            while i < len(lines) and lines[i].startswith(indent + "- "):
                item = lines[i][len(indent) + 2:].strip()
                if not item.startswith(("pipeline/", "stages/")):
                    rest.append(lines[i])
                i += 1
            out.extend(f"{indent}- {d}\n" for d in code_deps(stage))
            out.extend(rest)
            continue
        i += 1
    return "".join(out)


def main() -> int:
    old = DVC_YAML.read_text()
    new = sync(old)
    if "--check" in sys.argv:
        print("dvc.yaml code deps are in sync" if new == old else "dvc.yaml code deps are out of date")
        return int(new != old)
    if new != old:
        DVC_YAML.write_text(new)
        print("dvc.yaml code deps updated")
    else:
        print("dvc.yaml code deps already in sync")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
