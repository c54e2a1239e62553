"""Writing predicted labels out of the cache (used by ``partstad export`` and ``partstad predict``).

Per object and method, in the object's original coordinates (inverse of the ingest
normalisation): ``<Cat>_<id>_<method>.ply`` (label colours, ``semantic``/``instance``
properties), ``_semantic.npy``, ``_instance.npy``, ``.glb`` (one node per part in its
palette colour; mesh inputs as the mesh with faces coloured by the majority label of their
samples, everything else as a coloured point cloud) and ``.json`` (the sidecar: part
names, colours, per-point semantic and instance ids, instances with confidences, and the
provenance record of :mod:`stages.provenance`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.meta import part_names
from stages.store import CategoryStore

log = logging.getLogger("partstad")


def _glb(
    ing: CategoryStore, object_id: str, attrs: dict[str, Any], xyz: np.ndarray, sem: np.ndarray, names: tuple[str, ...], palette: np.ndarray
) -> tuple[bytes, str]:
    """GLB bytes and what they hold ("mesh" or "points")."""
    from pipeline.export_glb import face_majority_labels, mesh_glb, points_glb

    if attrs.get("kind") == "mesh" and attrs.get("path"):
        src = Path(attrs["path"])
        try:
            from pipeline.data.shapes import load_mesh

            mesh = load_mesh(src, object_id) if src.is_file() else None
            face = ing.read(object_id, "face").astype(np.int64)
        except Exception as exc:  # noqa: BLE001 - fall back to the points, say why
            log.warning("[export] %s: cannot re-read the mesh %s (%s); GLB holds the coloured points", object_id, src, exc)
            mesh = None
        if mesh is not None and len(mesh.faces) == int(attrs.get("n_faces", -1)) and face.size and face.max() < len(mesh.faces):
            flab = face_majority_labels(face, sem, mesh.vertices, mesh.faces, xyz)
            return mesh_glb(mesh.vertices, mesh.faces, flab, names, palette), "mesh"
        if mesh is None and not src.is_file():
            log.warning("[export] %s: source mesh %s is gone; GLB holds the coloured points", object_id, src)
    return points_glb(xyz, sem, names, palette), "points"


def export_object(
    cache: str, object_id: str, category: str, method: str, out_dir: Path, provenance: dict[str, Any] | None = None
) -> list[Path]:
    """Write the PLY, the two .npy files, the GLB and the JSON sidecar; return their paths."""
    from pipeline.data.ply import write_ply
    from pipeline.viz_labels import colour_labels, label_palette
    from stages.common import write_json

    ing, ev = CategoryStore(cache, "ingest", category), CategoryStore(cache, "evaluate", category)
    attrs = ing.attrs(object_id)
    xyz = ing.read(object_id, "xyz").astype(np.float64) * float(attrs["scale"]) + np.asarray(attrs["centre"], dtype=np.float64)
    sem = ev.read(object_id, f"sem_{method}").astype(np.int32)
    ins = ev.read(object_id, f"ins_{method}").astype(np.int32)
    names = part_names(category)
    palette = label_palette(len(names))
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = out_dir / f"{category}_{object_id.split('/')[-1]}_{method}"
    ply, sem_npy, ins_npy, glb, side = (
        stem.with_suffix(".ply"),
        Path(f"{stem}_semantic.npy"),
        Path(f"{stem}_instance.npy"),
        stem.with_suffix(".glb"),
        stem.with_suffix(".json"),
    )
    write_ply(ply, xyz, colour_labels(sem, len(names)), {"semantic": sem, "instance": ins})
    np.save(sem_npy, sem)
    np.save(ins_npy, ins)
    data, kind = _glb(ing, object_id, attrs, xyz, sem, names, palette)
    tmp = glb.with_name(glb.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(glb)
    inst_label = ev.read(object_id, f"inst_label_{method}").astype(np.int64)
    inst_conf = ev.read(object_id, f"inst_conf_{method}").astype(np.float64)
    instances = [
        {
            "id": int(i),
            "label": int(inst_label[i]),
            "part": names[inst_label[i]] if 0 <= inst_label[i] < len(names) else None,
            "confidence": float(inst_conf[i]),
            "n_points": int((ins == i).sum()),
        }
        for i in range(len(inst_label))
    ]
    sidecar = {
        "object": object_id,
        "category": category,
        "method": method,
        "source_file": attrs.get("path"),
        "source": attrs.get("source"),
        "glb_holds": kind,
        "coordinates": "original (the input file's frame)",
        "centre": attrs["centre"],
        "scale": attrs["scale"],
        "part_names": list(names),
        "colours": {"unlabelled": palette[0].tolist(), **{n: palette[k + 1].tolist() for k, n in enumerate(names)}},
        "n_points": int(len(sem)),
        "semantic": sem.tolist(),
        "instance": ins.tolist(),
        "instances": instances,
        "files": {"ply": ply.name, "glb": glb.name, "semantic": sem_npy.name, "instance": ins_npy.name},
        "provenance": provenance,
    }
    write_json(side, sidecar)
    return [ply, sem_npy, ins_npy, glb, side]


#: keys of a sidecar that the viewer and ``report --predict`` read
SIDECAR_KEYS = ("object", "category", "method", "part_names", "semantic", "instance", "files", "centre", "scale")


def _sidecar_object(path: Path) -> dict[str, Any] | None:
    """One export's shape for the viewer: normalised points, labels, names; None when the
    JSON file is no sidecar of an export. A damaged sidecar or PLY is a ParamsError naming it."""
    import json
    import math

    from pipeline.data.ply import read_ply
    from pipeline.errors import ObjectError
    from stages.common import ParamsError

    try:
        side = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ParamsError(f"{path}: not a readable JSON file ({exc})") from None
    if not isinstance(side, dict) or not {"semantic", "files", "object"} <= set(side):
        return None
    missing = [k for k in SIDECAR_KEYS if k not in side]
    if missing:
        raise ParamsError(f"{path}: export sidecar without {', '.join(missing)} (re-run `partstad predict`)")
    files = side["files"] if isinstance(side["files"], dict) else {}
    ply_name = str(files.get("ply", ""))
    if not ply_name or Path(ply_name).name != ply_name:
        raise ParamsError(f"{path}: files.ply must name a PLY next to it, got {ply_name!r}")
    ply = path.parent / ply_name
    if not ply.is_file():
        raise ParamsError(f"{ply}: missing (named by {path}; re-run `partstad predict`)")
    try:
        xyz = read_ply(ply).xyz
    except (ObjectError, OSError, ValueError) as exc:
        raise ParamsError(f"{ply}: not a readable PLY ({exc})") from None
    names = side["part_names"]
    try:
        sem = np.asarray(side["semantic"], dtype=np.int64)
        ins = np.asarray(side["instance"], dtype=np.int64)
        centre = np.asarray(side["centre"], dtype=np.float64)
        scale = float(side["scale"])
    except (TypeError, ValueError, OverflowError) as exc:
        raise ParamsError(f"{path}: semantic, instance, centre and scale must be numbers ({exc})") from None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ParamsError(f"{path}: part_names must be a list of strings")
    if sem.shape != (len(xyz),) or ins.shape != (len(xyz),):
        raise ParamsError(f"{path}: {sem.size} semantic / {ins.size} instance labels for the {len(xyz)} points of {ply}")
    if sem.size and (sem.min() < -1 or sem.max() >= len(names)):
        raise ParamsError(f"{path}: semantic labels must lie in [-1, {len(names) - 1}], got [{sem.min()}, {sem.max()}]")
    if centre.shape != (3,) or not np.isfinite(centre).all() or not (math.isfinite(scale) and scale > 0):
        raise ParamsError(f"{path}: centre must be 3 finite numbers and scale a positive number")
    prov = side.get("provenance")
    comps = prov.get("simulated_components") if isinstance(prov, dict) else None
    return {
        "object": str(side["object"]),
        "category": str(side["category"]),
        "method": str(side["method"]),
        "part_names": names,
        "xyz": ((xyz - centre) / scale).astype(np.float32),
        "sem": sem,
        "ins": ins,
        "source_file": side.get("source_file"),
        "simulated_components": [str(c) for c in comps] if isinstance(comps, list) else [],
    }


def read_exports(sidecars: list[Path]) -> tuple[list[dict[str, Any]], list[str]]:
    """The shapes of these sidecars grouped by object (one scene per exported method, in the
    report's method order) and the simulated components they name; non-sidecar JSON is skipped."""
    from pipeline.report import METHOD_TITLES
    from pipeline.report_3d import Labeling
    from stages.common import ParamsError

    by_object: dict[str, dict[str, Any]] = {}
    components: list[str] = []
    for path in sidecars:
        one = _sidecar_object(path)
        if one is None:
            continue
        components += [c for c in one["simulated_components"] if c not in components]
        obj = by_object.setdefault(one["object"], {**one, "labelings": []})
        if obj["part_names"] != one["part_names"] or obj["xyz"].shape != one["xyz"].shape:
            raise ParamsError(f"{path}: another shape or part list than the other exports of {one['object']}")
        title = METHOD_TITLES.get(one["method"], one["method"])
        obj["labelings"].append(Labeling(title, one["method"], one["sem"], one["ins"]))
    order = {m: i for i, m in enumerate(METHOD_TITLES)}
    for obj in by_object.values():
        obj["labelings"].sort(key=lambda lab: order.get(lab.method, len(order)))
    return [by_object[o] for o in sorted(by_object)], components


def write_viewer(path: Path, sidecars: list[Path], title: str, pictures: bool = False) -> Path:
    """``viewer.html`` (or ``report --predict``'s page) of the exports these sidecars name."""
    from pipeline.report_predict import predicted_page, write_page

    objects, components = read_exports(sidecars)
    return write_page(path, predicted_page(objects, components or None, title, pictures=pictures))
