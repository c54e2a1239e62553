"""Reader for raw PartNet-Mobility objects (`meta.json`, `result.json`, `point_sample/`, meshes).

PartNetE was built from PartNet-Mobility by merging fine PartNet nodes into a few coarse part
names per category (SPEC §1.2). We redo that merge from the part tree: each point carries the
id of its leaf node; walking from that leaf to the root, the DEEPEST node whose name maps to a
PartNetE part decides the label, and that node's id is the instance. So a handle on a door is
a "handle" (deeper), the door surface under the same door is a "door" instance.

Names inside an object are untrusted: the folder name must be a valid object id, file-name
numbers are matched as ASCII digits only, and mesh names from `result.json` must be plain
file names inside `textured_objs/`.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.data.cloud import LabelledCloud, make_cloud
from pipeline.data.ids import id_sort_key, validate_object_id
from pipeline.data.input_file import check_regular, exists, open_regular, read_text
from pipeline.data.sampling import barycentric_combine, sample_triangles
from pipeline.errors import BadInputError
from pipeline.meta import PARTNETE_PARTS, part_names

#: PartNet node name -> PartNetE part, per category. Names not listed fall back to an exact
#: match with the category's part list (e.g. a node called "handle" in any category).
#: Structural nodes (frames, panels, stretchers, central columns, bodies) stay unlabelled.
#: Only whole-part nodes are listed, never their sub-pieces (e.g. "drawer" but not
#: "drawer_front"): a listed sub-piece would be deeper and split one drawer into several
#: instances. Sub-pieces inherit the label of the whole part above them.
MOBILITY_NAME_MAP: dict[str, dict[str, str]] = {
    "Chair": {
        "chair_arm": "arm",
        "chair_back": "back",
        "chair_head": "back",
        "chair_seat": "seat",
        "leg": "leg",
        "pedestal": "leg",
        "rocker": "leg",
        "wheel": "wheel",
    },
    "StorageFurniture": {
        "cabinet_door": "door",
        "door": "door",
        "drawer": "drawer",
        "handle": "handle",
        "knob": "handle",
    },
    "Table": {
        "tabletop": "tabletop",
        "leg": "leg",
        "pedestal": "leg",
        "drawer": "drawer",
        "cabinet_door": "door",
        "door": "door",
        "handle": "handle",
        "knob": "handle",
        "wheel": "wheel",
    },
    "Keyboard": {
        "key": "key",
        "keys": "key",
        "button": "key",
        "cord": "cord",
        "wire": "cord",
        "cable": "cord",
        "usb_cable": "cord",
    },
    "Bottle": {"lid": "lid", "cap": "lid", "closure": "lid", "bottle_cap": "lid", "bottle_lid": "lid"},
    "Camera": {
        "button": "button",
        "shutter": "button",
        "shutter_button": "button",
        "knob": "button",
        "lens": "lens",
        "camera_lens": "lens",
    },
}

# re.ASCII: `\d` would otherwise also match other scripts' digits ("٣").
_LABEL_FILE = re.compile(r"sample-points-all-label-(\d+)\.txt$", re.ASCII)
_PTS_FILE = re.compile(r"sample-points-all-pts-nor-rgba-(\d+)\.txt$", re.ASCII)
GREY = 128
#: Largest `point_sample/*.txt` read (bytes). The dataset's files are ~1 MB (10k rows);
#: `np.loadtxt` needs several times the text size in memory, so a runaway file stops here.
MAX_SAMPLE_BYTES = 256 << 20


def _read_json(path: Path, oid: str | None) -> Any:
    if not exists(path):
        raise BadInputError(f"missing {path.name}", object_id=oid, path=path)
    try:  # read_text: a FIFO or symlink loop is a BadInputError, never a hang
        return json.loads(read_text(path, object_id=oid))
    except (ValueError, RecursionError) as e:  # RecursionError: absurdly nested JSON
        raise BadInputError(f"cannot parse {path.name} ({e})", object_id=oid, path=path) from None


class PartTree:
    """The `result.json` forest: node id -> (name, parent id, objs)."""

    def __init__(self, roots: list[dict], *, path: Path | None = None, object_id: str | None = None):
        self.name: dict[int, str] = {}
        self.parent: dict[int, int | None] = {}
        self.objs: dict[int, list[str]] = {}
        self.children: dict[int, list[int]] = {}
        stack: list[tuple[dict, int | None]] = [(r, None) for r in roots]
        try:
            while stack:
                node, par = stack.pop()
                nid = int(node["id"])
                if nid in self.name:
                    raise BadInputError(f"result.json repeats node id {nid}", object_id=object_id, path=path)
                self.name[nid] = str(node.get("name", ""))
                self.parent[nid] = par
                self.objs[nid] = [str(o) for o in node.get("objs", [])]
                kids = list(node.get("children", []) or [])
                self.children[nid] = [int(k["id"]) for k in kids]
                stack.extend((k, nid) for k in kids)
        except (KeyError, TypeError, ValueError, OverflowError) as e:  # Overflow: "id": 1e999
            raise BadInputError(f"malformed result.json node ({e!r})", object_id=object_id, path=path) from None

    def leaves(self) -> list[int]:
        return [n for n, ch in self.children.items() if not ch]

    def path_to_root(self, nid: int) -> list[int]:
        """[nid, parent, ..., root] (deepest first)."""
        out = []
        cur: int | None = nid
        while cur is not None and cur not in out:
            out.append(cur)
            cur = self.parent.get(cur)
        return out


def node_part_lookup(tree: PartTree, category: str) -> dict[int, tuple[int, int]]:
    """node id -> (part label, instance node id) for every node below a mapped node.

    The deepest mapped node on the path to the root wins. Nodes with no mapped ancestor are
    absent (label -1, instance -1).
    """
    parts = part_names(category)
    index = {p: i for i, p in enumerate(parts)}
    table = MOBILITY_NAME_MAP.get(category, {})

    def node_label(nid: int) -> int | None:
        name = tree.name[nid]
        if name in table:
            return index[table[name]]
        return index.get(name)

    out: dict[int, tuple[int, int]] = {}
    for nid in tree.name:
        for anc in tree.path_to_root(nid):
            lab = node_label(anc)
            if lab is not None:
                out[nid] = (lab, anc)
                break
    return out


def _find_point_sample(obj_dir: Path) -> tuple[Path, Path] | None:
    ps = obj_dir / "point_sample"
    if not ps.is_dir():
        return None
    labels = {m.group(1): p for p in ps.iterdir() if (m := _LABEL_FILE.search(p.name))}
    pts = {m.group(1): p for p in ps.iterdir() if (m := _PTS_FILE.search(p.name))}
    common = sorted(set(labels) & set(pts), key=id_sort_key)
    if not common:
        return None
    k = common[-1]  # the densest sampling available
    return pts[k], labels[k]


def _read_point_sample(pts_path: Path, lab_path: Path, oid: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    try:
        a = np.loadtxt(io.StringIO(read_text(pts_path, max_bytes=MAX_SAMPLE_BYTES, object_id=oid)), dtype=np.float64, ndmin=2)
    except ValueError as e:
        raise BadInputError(f"cannot parse point sample ({e})", object_id=oid, path=pts_path) from None
    if a.shape[1] < 9:
        raise BadInputError(f"point sample rows have {a.shape[1]} columns, expected x y z nx ny nz r g b [a]", object_id=oid, path=pts_path)
    try:
        leaf = np.loadtxt(io.StringIO(read_text(lab_path, max_bytes=MAX_SAMPLE_BYTES, object_id=oid)), dtype=np.int64, ndmin=1)
    except ValueError as e:
        raise BadInputError(f"cannot parse point labels ({e})", object_id=oid, path=lab_path) from None
    if leaf.shape[0] != a.shape[0]:
        raise BadInputError(f"{leaf.shape[0]} labels for {a.shape[0]} points", object_id=oid, path=lab_path)
    col = a[:, 6:9]
    # The files store 0..255 colours; scale up if a variant stores 0..1 floats.
    if col.size and np.nanmax(col) <= 1.0:
        col = col * 255.0
    rgb = np.clip(np.rint(np.nan_to_num(col, nan=GREY)), 0, 255).astype(np.uint8)
    return a[:, :3], rgb, leaf


class _ObjectDirResolver:
    """trimesh asset resolver: names relative to `textured_objs/`, confined to the object dir
    (textures live in `../images/`, which trimesh's default resolver refuses)."""

    def __init__(self, base: Path, root: Path):
        self.base = base.resolve()
        self.root = root.resolve()

    def _abs(self, name: str) -> Path:
        p = (self.base / name.strip()).resolve()
        if not p.is_relative_to(self.root):
            raise ValueError(f"{name!r} escapes the object directory")
        return p

    def get(self, name: str) -> bytes:
        for cand in (name.strip(), name.strip().lstrip("/"), Path(name).name):
            try:
                p = self._abs(cand)
            except ValueError:
                continue
            if p.is_file():
                return p.read_bytes()
        raise FileNotFoundError(name)

    __getitem__ = get  # trimesh's OBJ loader fetches the .mtl with resolver[name]

    def namespaced(self, namespace: str) -> _ObjectDirResolver:
        return _ObjectDirResolver(self._abs(namespace), self.root)

    def keys(self):  # pragma: no cover - trimesh only uses this for zip archives
        return iter(())

    def write(self, name: str, data: bytes) -> None:  # pragma: no cover
        raise PermissionError("read-only resolver")


def _load_obj_pieces(path: Path, root: Path) -> list[tuple[Any, Any]]:
    """Load one .obj as [(trimesh.Trimesh, visual)] per material group."""
    import trimesh

    resolver = _ObjectDirResolver(path.parent, root)
    with open_regular(path) as f:
        # trimesh duck-types resolvers but hints its ABC, which would import trimesh at module load
        scene = trimesh.load(f, file_type="obj", resolver=resolver, force="scene", process=False)  # type: ignore[arg-type]
    out = []
    geoms: list[Any] = scene.dump(concatenate=False) if hasattr(scene, "dump") else [scene]
    for g in geoms:
        if getattr(g, "faces", None) is None or len(g.faces) == 0:
            continue
        out.append((g, g.visual))
    return out


def _visual_colours(mesh: Any, face: np.ndarray, bary: np.ndarray) -> np.ndarray:
    """Colour of sampled points from a trimesh visual: texture at the interpolated UV times
    the diffuse colour, else the material colour, else face/vertex colours, else grey."""
    from trimesh.visual.color import uv_to_color

    n = face.shape[0]
    vis = mesh.visual
    try:
        if vis.kind == "texture" or hasattr(vis, "material"):
            mat = getattr(vis, "material", None)
            base = np.array([255, 255, 255], np.float64)
            if mat is not None:
                mc = getattr(mat, "main_color", None)
                if mc is not None:
                    base = np.asarray(mc, np.float64)[:3]
            img = getattr(mat, "image", None) if mat is not None else None
            uv = getattr(vis, "uv", None)
            if img is not None and uv is not None and len(uv) == len(mesh.vertices):
                fuv = np.asarray(uv, np.float64)[mesh.faces[face]]  # (n,3,2)
                puv = barycentric_combine(bary, fuv)
                tex = uv_to_color(puv % 1.0, img)[:, :3].astype(np.float64)
                return np.clip(tex * base / 255.0, 0, 255).astype(np.uint8)
            return np.tile(base.astype(np.uint8), (n, 1))
        if vis.kind == "face":
            return np.asarray(vis.face_colors)[face, :3].astype(np.uint8)
        if vis.kind == "vertex":
            vc = np.asarray(vis.vertex_colors, np.float64)[mesh.faces[face], :3]
            return np.clip(barycentric_combine(bary, vc), 0, 255).astype(np.uint8)
    except Exception:  # noqa: BLE001 - a broken texture must not lose the geometry
        pass
    return np.full((n, 3), GREY, np.uint8)


def _mesh_path(tex_dir: Path, obj_name: str, oid: str, result_path: Path) -> Path:
    """`textured_objs/<name>.obj`; a name with a path in it could read any file on disk."""
    if obj_name in ("", ".", "..") or "/" in obj_name or "\\" in obj_name or "\0" in obj_name:
        raise BadInputError(f"result.json names mesh {obj_name!r}, which is not a plain file name", object_id=oid, path=result_path)
    return tex_dir / f"{obj_name}.obj"


def _sample_meshes(obj_dir: Path, tree: PartTree, n_points: int, seed: int, oid: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Area-weighted sample over every leaf's meshes; returns (xyz, rgb, leaf id per point)."""
    tex_dir = obj_dir / "textured_objs"
    pieces: list[tuple[Any, int]] = []  # (mesh, leaf id)
    for nid in sorted(tree.name):
        for obj_name in tree.objs[nid]:
            p = _mesh_path(tex_dir, obj_name, oid, obj_dir / "result.json")
            if not exists(p):
                raise BadInputError(f"mesh {obj_name}.obj listed in result.json is missing", object_id=oid, path=p)
            check_regular(p, object_id=oid)
            try:
                pieces.extend((m, nid) for m, _ in _load_obj_pieces(p, obj_dir))
            except BadInputError:
                raise
            except Exception as e:  # noqa: BLE001
                raise BadInputError(f"cannot load mesh ({type(e).__name__}: {e})", object_id=oid, path=p) from None
    if not pieces:
        raise BadInputError("object has neither point_sample/ nor meshes in result.json", object_id=oid, path=obj_dir / "result.json")
    tris = np.concatenate([np.asarray(m.triangles, np.float64) for m, _ in pieces])
    owner = np.repeat(np.arange(len(pieces)), [len(m.faces) for m, _ in pieces])
    first = np.concatenate([[0], np.cumsum([len(m.faces) for m, _ in pieces])])
    rng = np.random.default_rng(seed)
    try:
        xyz, face, bary = sample_triangles(tris, n_points, rng)
    except ValueError as e:
        raise BadInputError(str(e), object_id=oid, path=tex_dir) from None
    piece = owner[face]
    rgb = np.empty((n_points, 3), np.uint8)
    leaf = np.empty(n_points, np.int64)
    for i in np.unique(piece):
        sel = piece == i
        mesh, nid = pieces[i]
        rgb[sel] = _visual_colours(mesh, face[sel] - first[i], bary[sel])
        leaf[sel] = nid
    return xyz, rgb, leaf


def read_mobility_object(
    obj_dir: str | Path,
    n_points: int = 10000,
    seed: int = 0,
    category: str | None = None,
) -> LabelledCloud:
    """Read one PartNet-Mobility object as a labelled, normalised cloud.

    Points come from `point_sample/` when present (`n_points`/`seed` are then unused), else
    from area-weighted sampling of the per-part meshes in `textured_objs/`. The category is
    `meta.json`'s `model_cat` unless given. object_id is "<Category>/<dir name>"; a dir name
    that `validate_object_id` refuses is a BadInputError naming the folder.
    """
    obj_dir = Path(obj_dir)
    validate_object_id(obj_dir.name, path=obj_dir)
    if category is None:
        meta = _read_json(obj_dir / "meta.json", None)
        category = meta.get("model_cat") if isinstance(meta, dict) else None
        if not category or not isinstance(category, str):
            raise BadInputError(f"meta.json has no model_cat string (got {category!r})", path=obj_dir / "meta.json")
    oid = f"{category}/{obj_dir.name}"
    if category not in PARTNETE_PARTS:
        raise BadInputError(f"category {category!r} is not a PartNetE category", object_id=oid, path=obj_dir / "meta.json")
    result_path = obj_dir / "result.json"
    roots = _read_json(result_path, oid)
    if isinstance(roots, dict):
        roots = [roots]
    tree = PartTree(roots, path=result_path, object_id=oid)
    lookup = node_part_lookup(tree, category)

    found = _find_point_sample(obj_dir)
    if found is not None:
        xyz, rgb, leaf = _read_point_sample(*found, oid)
        src_path = found[0]
    else:
        xyz, rgb, leaf = _sample_meshes(obj_dir, tree, n_points, seed, oid)
        src_path = obj_dir / "textured_objs"

    sem = np.full(leaf.shape[0], -1, np.int16)
    ins = np.full(leaf.shape[0], -1, np.int32)
    for nid in np.unique(leaf):
        hit = lookup.get(int(nid))
        if hit is not None:
            sel = leaf == nid
            sem[sel] = hit[0]
            ins[sel] = hit[1]
    return make_cloud(
        xyz, rgb, sem, ins, object_id=oid, category=category, source="mobility", n_parts=len(part_names(category)), path=src_path
    )


#: Public name of the sample-colour rule, shared with the reader of your own shapes.
visual_colours = _visual_colours
