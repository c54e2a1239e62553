"""``partstad doctor``: what is installed, which backends will run, whether the weights load.

Prints one line per check (``ok`` / ``--`` not installed or not configured / ``WARN`` / ``FAIL``):
torch and the device ``--device auto`` picks, offscreen GL for pyrender (EGL), transformers
(Grounding DINO), segment-anything, dvc; then the backend each stage will use under the
resolved params (the simulated ones named as such); then whether the weights named in
params load: ``detect.weights_dir`` (Grounding DINO) and ``segment.sam_checkpoint`` (SAM).
Last, when the working directory holds a dvc.yaml, whether its per-category outs name exactly
the categories of params (``WARN`` if not: regenerate it with ``python tools/sync_dvc_deps.py``).
Exit 1 when a configured backend cannot run or a weights file named in params does not
load; 0 otherwise (warnings included). Packages are looked up without importing the heavy ones unless the
params use them, so the command stays quick.
"""

from __future__ import annotations

import importlib.util
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path, PurePosixPath
from typing import Any

import click

from stages.common import load_params, params_option, set_option


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def _package(module: str, dist: str) -> tuple[bool, str]:
    """(importable, description) without importing the module."""
    if importlib.util.find_spec(module) is None:
        return False, "not installed"
    return True, f"{dist} {_version(dist) or '(version unknown)'}"


def _torch() -> tuple[bool, str]:
    try:
        import torch
    except Exception as exc:  # noqa: BLE001
        return False, f"cannot import ({type(exc).__name__}: {exc})"
    dev = f"cuda ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else "cpu"
    return True, f"torch {torch.__version__}; --device auto -> {dev}"


def _cuda_row() -> tuple[str, str, str]:
    """`--device cuda` on a machine whose torch sees no GPU fails every model stage: say so here."""
    try:
        import torch

        if torch.cuda.is_available():
            return "ok", "--device cuda", torch.cuda.get_device_name(0)
    except Exception as exc:  # noqa: BLE001
        return "FAIL", "--device cuda", f"torch does not import ({type(exc).__name__}: {exc})"
    return "FAIL", "--device cuda", "torch sees no CUDA device here; use --device cpu"


def _gl() -> tuple[bool, str]:
    if importlib.util.find_spec("pyrender") is None:
        return False, "pyrender not installed (render.backend numpy works without it)"
    from pipeline.render.gl_setup import gl_available, gl_error

    if gl_available():
        import os

        return (
            True,
            f"pyrender {_version('pyrender')}, offscreen GL works (PYOPENGL_PLATFORM={os.environ.get('PYOPENGL_PLATFORM', 'unset')})",
        )
    return False, f"pyrender installed but no offscreen GL context ({gl_error()}); set PYOPENGL_PLATFORM=egl or use render.backend numpy"


def checks(cfg: Any, device: str = "cpu", load: bool = True) -> list[tuple[str, str, str]]:
    """(status, name, detail) rows; status "ok", "--" (absent, not needed), "WARN" (works, but
    something is out of date) or "FAIL" (needed and broken)."""
    rows: list[tuple[str, str, str]] = []

    def add(name: str, ok: bool, detail: str, needed: bool) -> None:
        rows.append(("ok" if ok else ("FAIL" if needed else "--"), name, detail))

    ok, d = _torch()
    add("torch", ok, d, True)
    gl_ok, d = (
        _gl()
        if cfg.render.backend != "numpy"
        else (
            importlib.util.find_spec("pyrender") is not None,
            "pyrender " + (_version("pyrender") or "not installed") + " (not used: render.backend numpy)",
        )
    )
    add("pyrender/EGL", gl_ok, d, cfg.render.backend == "pyrender")
    from stages.backends.lookup import registry

    kinds = [registry(k) for k in ("sources", "detectors", "maskers")]
    active = {id(reg.configured(cfg)) for reg in kinds}
    for reg in kinds:  # the packages registered backends import; needed by the configured ones
        for b in reg.values():
            if b.package:
                ok, d = _package(*b.package)
                add(b.package[0], ok, d, id(b) in active)
    ok, d = _package("dvc", "dvc")
    add("dvc", ok, d, False)

    from pipeline.render.render import _resolve_backend  # the renderer's own `auto` rule, not a copy

    try:
        render = _resolve_backend(cfg.render.backend, cfg.render.footprint)
    except ValueError as exc:
        render = None
        rows.append(("FAIL", "render backend", str(exc)))
    sp = "greedy" if cfg.superpoints.backend == "auto" else cfg.superpoints.backend  # pipeline.superpoints: auto means greedy
    src, det, seg = (reg.configured(cfg) for reg in kinds)
    for name, detail in ((("render backend", render),) if render else ()) + (
        ("superpoints backend", sp),
        ("detect backend", det.describe(cfg)),
        ("segment mode", seg.describe(cfg)),
        ("data source", src.describe(cfg)),
    ):
        rows.append(("ok", name, detail))
    for reg in kinds:  # settings of every backend that are set (weights that load), and those the configured ones miss
        for b in reg.values():
            rows.extend(b.doctor_rows(cfg, device, load, id(b) in active))
    rows.append(dvc_yaml_row(list(cfg.categories)))
    return rows


def dvc_yaml_row(categories: list[str], path: Path = Path("dvc.yaml")) -> tuple[str, str, str]:
    """Whether the per-category outs of ``path`` name exactly ``categories`` (dvc.yaml lists them
    one by one, generated from params.yaml by tools/sync_dvc_deps.py, so they can go stale).

    An out is per-category when one of its path components (suffix dropped) is a known
    category; each such pattern (``cache/render/{category}.zarr``) must hold every category.
    """
    if not path.is_file():
        return "--", "dvc.yaml", f"none in {Path.cwd()} (only `dvc repro` needs one)"
    import yaml

    from pipeline.meta import known_categories

    try:
        stages = (yaml.safe_load(path.read_text()) or {}).get("stages") or {}
        if not isinstance(stages, dict):
            raise ValueError("`stages` is not a mapping")
    except Exception as exc:  # noqa: BLE001
        return "WARN", "dvc.yaml", f"cannot read {path} ({type(exc).__name__}: {exc})"
    known = set(known_categories()) | set(categories)
    missing: dict[str, set[str]] = {}  # category -> stages whose outs lack it
    extra: dict[str, set[str]] = {}  # category not in params -> stages whose outs name it
    checked, templated = 0, 0
    for name, spec in stages.items():
        if not isinstance(spec, dict) or "foreach" in spec or "matrix" in spec:
            templated += 1  # templated stages expand whatever list they loop over
            continue
        patterns: dict[str, set[str]] = {}
        for key in ("outs", "metrics", "plots"):
            for entry in spec.get(key) or []:
                out = entry if isinstance(entry, str) else next(iter(entry), "") if isinstance(entry, dict) else ""
                parts = PurePosixPath(str(out)).parts
                for i, part in enumerate(parts):
                    stem = part.split(".")[0]
                    if stem in known:
                        patterns.setdefault("/".join((*parts[:i], "{category}" + part[len(stem) :], *parts[i + 1 :])), set()).add(stem)
                        break
        checked += bool(patterns)
        for cats in patterns.values():
            for c in categories:
                if c not in cats:
                    missing.setdefault(c, set()).add(name)
            for c in cats - set(categories):
                extra.setdefault(c, set()).add(name)
    if not missing and not extra:
        if not checked:
            return (
                "--",
                "dvc.yaml",
                f"no per-category outs listed ({templated} foreach/matrix stages)" if templated else "no per-category outs listed",
            )
        n = len(categories)
        return (
            "ok",
            "dvc.yaml",
            f"per-category outs of {checked} stage{'s' if checked > 1 else ''} cover the {n} categor{'y' if n == 1 else 'ies'} of params",
        )
    what = []
    if missing:
        where = sorted(set().union(*missing.values()))
        what.append(
            f"outs do not cover {', '.join(c for c in categories if c in missing)} of params "
            f"({', '.join(where) if len(where) <= 3 else f'{len(where)} stages'})"
        )
    if extra:
        what.append(f"outs name {', '.join(sorted(extra))}, not in params")
    return "WARN", "dvc.yaml", "; ".join(what) + ": run `python tools/sync_dvc_deps.py`"


@click.command()
@params_option
@click.option("--device", default="cpu", show_default=True, type=click.Choice(["cpu", "cuda"]), help="Device to load the weights on.")
@click.option("--no-load", is_flag=True, help="Do not load the weights files (only check the packages and backends).")
@set_option
def doctor(params_path: str, device: str, no_load: bool) -> None:
    """Check the installation: packages, backends that will run, weights that load."""
    from stages.common import StageFailed

    cfg = load_params(params_path)
    rows = checks(cfg, device, load=not no_load)
    if device == "cuda":
        rows.insert(0, _cuda_row())
    for status, name, detail in rows:
        click.echo(f"{status:4s} {name:22s} {detail}")
    bad = [name for status, name, _ in rows if status == "FAIL"]
    if bad:
        raise StageFailed(f"doctor: {', '.join(bad)} cannot run as configured")
    warned = sum(status == "WARN" for status, _, _ in rows)
    click.echo(
        "doctor: everything the params use is in place" + (f" ({warned} warning{'s' if warned > 1 else ''} above)" if warned else "")
    )
