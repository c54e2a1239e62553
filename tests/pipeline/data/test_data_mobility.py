import json
from pathlib import Path

import numpy as np
import pytest

from pipeline.data.mobility import MOBILITY_NAME_MAP, PartTree, node_part_lookup, read_mobility_object
from pipeline.errors import BadInputError
from pipeline.meta import part_names

SAMPLE = Path(__file__).resolve().parents[4] / "shared" / "samples" / "mobility" / "40147"

CABINET_TREE = [
    {
        "id": 0,
        "name": "storage_furniture",
        "text": "Storage Furniture",
        "children": [
            {
                "id": 1,
                "name": "cabinet",
                "children": [
                    {"id": 2, "name": "cabinet_frame", "children": [{"id": 3, "name": "vertical_side_panel", "objs": ["p3"]}]},
                    {
                        "id": 4,
                        "name": "cabinet_door",
                        "children": [
                            {"id": 5, "name": "cabinet_door_surface", "objs": ["p5"]},
                            {"id": 6, "name": "handle", "objs": ["p6"]},
                        ],
                    },
                    {
                        "id": 7,
                        "name": "drawer",
                        "children": [
                            {"id": 10, "name": "drawer_box", "children": [{"id": 8, "name": "drawer_front", "objs": ["p8"]}]},
                            {"id": 9, "name": "handle", "objs": ["p9"]},
                        ],
                    },
                ],
            }
        ],
    }
]


def _write_obj(d: Path, tree, cat="StorageFurniture", leaves=None, rgb255=True):
    d.mkdir(parents=True, exist_ok=True)
    (d / "meta.json").write_text(json.dumps({"model_cat": cat, "anno_id": d.name}))
    (d / "result.json").write_text(json.dumps(tree))
    if leaves is not None:
        ps = d / "point_sample"
        ps.mkdir()
        n = len(leaves)
        rng = np.random.default_rng(1)
        xyz = rng.normal(size=(n, 3))
        col = rng.integers(0, 256, (n, 3))
        rows = []
        for p, c in zip(xyz, col):
            cs = " ".join(str(int(v)) for v in c) if rgb255 else " ".join(f"{v / 255:.6f}" for v in c)
            rows.append(f"{p[0]:.6f} {p[1]:.6f} {p[2]:.6f} 0 1 0 {cs} 1.000000")
        (ps / f"sample-points-all-pts-nor-rgba-{n}.txt").write_text("\n".join(rows) + "\n")
        (ps / f"sample-points-all-label-{n}.txt").write_text("\n".join(str(x) for x in leaves) + "\n")
        return col


def test_point_sample_deepest_match_and_instances(tmp_path):
    leaves = [3, 5, 5, 6, 8, 8, 9, 9, 99, 3]
    col = _write_obj(tmp_path / "123", CABINET_TREE, leaves=leaves)
    c = read_mobility_object(tmp_path / "123")
    names = part_names("StorageFurniture")  # door, drawer, handle
    door, drawer, handle = names.index("door"), names.index("drawer"), names.index("handle")
    np.testing.assert_array_equal(c.sem, [-1, door, door, handle, drawer, drawer, handle, handle, -1, -1])
    # the instance is the id of the node that decided the label: door 4, drawer 7, handles 6 and 9
    np.testing.assert_array_equal(c.ins, [-1, 4, 4, 6, 7, 7, 9, 9, -1, -1])
    np.testing.assert_array_equal(c.rgb, col)
    assert c.object_id == "StorageFurniture/123" and c.source == "mobility" and c.n_points == 10


def test_point_sample_float_colours(tmp_path):
    col = _write_obj(tmp_path / "5", CABINET_TREE, leaves=[3, 5, 6, 8], rgb255=False)
    c = read_mobility_object(tmp_path / "5")
    assert np.abs(c.rgb.astype(int) - col).max() <= 1


def test_exact_name_fallback_for_unmapped_category(tmp_path):
    assert "Dishwasher" not in MOBILITY_NAME_MAP
    tree = [
        {
            "id": 0,
            "name": "dishwasher",
            "children": [
                {"id": 1, "name": "door", "children": [{"id": 2, "name": "door_frame"}, {"id": 3, "name": "handle"}]},
                {"id": 4, "name": "body"},
            ],
        }
    ]
    _write_obj(tmp_path / "77", tree, cat="Dishwasher", leaves=[2, 3, 4, 2])
    c = read_mobility_object(tmp_path / "77")
    np.testing.assert_array_equal(c.sem, [0, 1, -1, 0])
    np.testing.assert_array_equal(c.ins, [1, 3, -1, 1])


def test_lookup_table_maps_chair_names():
    tree = PartTree(
        [
            {
                "id": 0,
                "name": "chair",
                "children": [
                    {"id": 1, "name": "chair_back", "children": [{"id": 2, "name": "back_surface"}]},
                    {
                        "id": 3,
                        "name": "chair_base",
                        "children": [
                            {
                                "id": 4,
                                "name": "star_leg_base",
                                "children": [
                                    {"id": 5, "name": "central_support"},
                                    {"id": 6, "name": "leg"},
                                    {"id": 7, "name": "caster", "children": [{"id": 8, "name": "wheel"}]},
                                ],
                            }
                        ],
                    },
                ],
            }
        ]
    )
    lk = node_part_lookup(tree, "Chair")
    names = part_names("Chair")
    assert lk[2] == (names.index("back"), 1)
    assert lk[6] == (names.index("leg"), 6)
    assert lk[8] == (names.index("wheel"), 8)
    assert 5 not in lk and 0 not in lk


def test_bad_inputs(tmp_path):
    d = tmp_path / "1"
    _write_obj(d, CABINET_TREE, leaves=[3, 5])
    (d / "point_sample" / "sample-points-all-label-2.txt").write_text("3\n")
    with pytest.raises(BadInputError, match="1 labels for 2 points"):
        read_mobility_object(d)
    (d / "meta.json").write_text(json.dumps({"model_cat": "Spaceship"}))
    with pytest.raises(BadInputError, match="not a PartNetE category"):
        read_mobility_object(d)
    (d / "result.json").write_text("{broken")
    with pytest.raises(BadInputError, match="result.json"):
        read_mobility_object(d, category="StorageFurniture")
    with pytest.raises(BadInputError, match="meta.json"):
        read_mobility_object(tmp_path / "missing")


_CUBE = """mtllib {mtl}
v -0.5 -0.5 -0.5
v 0.5 -0.5 -0.5
v 0.5 0.5 -0.5
v -0.5 0.5 -0.5
v -0.5 -0.5 0.5
v 0.5 -0.5 0.5
v 0.5 0.5 0.5
v -0.5 0.5 0.5
vt 0 0
vt 1 0
vt 1 1
vt 0 1
{use}
f 1/1 3/3 2/2
f 1/1 4/4 3/3
f 5/1 6/2 7/3
f 5/1 7/3 8/4
f 1/1 2/2 6/3
f 1/1 6/3 5/4
f 4/1 8/4 7/3
f 4/1 7/3 3/2
f 1/1 5/2 8/3
f 1/1 8/3 4/4
f 2/1 3/4 7/3
f 2/1 7/3 6/2
"""


def _mesh_object(root: Path, texture_ref: str | None):
    from PIL import Image

    tree = [
        {
            "id": 0,
            "name": "storage_furniture",
            "children": [
                {
                    "id": 1,
                    "name": "drawer",
                    "children": [{"id": 2, "name": "drawer_front", "objs": ["front"]}, {"id": 3, "name": "handle", "objs": ["knob"]}],
                },
                {"id": 4, "name": "cabinet_frame", "objs": ["body"]},
            ],
        }
    ]
    _write_obj(root, tree)
    t = root / "textured_objs"
    t.mkdir()
    (root / "images").mkdir()
    Image.new("RGB", (2, 2), (0, 200, 0)).save(root / "images" / "tex.png")
    Image.new("RGB", (2, 2), (0, 0, 255)).save(root.parent / "outside.png")
    (t / "front.mtl").write_text("newmtl m0\nKd 1 0 0\n")
    (t / "front.obj").write_text(_CUBE.format(mtl="front.mtl", use="usemtl m0"))
    mtl = "newmtl m1\nKd 1 1 1\n" + (f"map_Kd {texture_ref}\n" if texture_ref else "")
    (t / "knob.mtl").write_text(mtl)
    knob = _CUBE.format(mtl="knob.mtl", use="usemtl m1")
    (t / "knob.obj").write_text(knob.replace("v 0.5", "v 0.7").replace("v -0.5", "v 0.6"))
    (t / "body.obj").write_text(_CUBE.format(mtl="none.mtl", use="").replace("v -0.5", "v -2"))


def test_mesh_fallback_labels_colours_and_seed(tmp_path):
    root = tmp_path / "obj" / "42"
    _mesh_object(root, "../images/tex.png")
    c = read_mobility_object(root, n_points=3000, seed=3)
    names = part_names("StorageFurniture")
    assert c.n_points == 3000
    assert set(np.unique(c.sem)) == {-1, names.index("drawer"), names.index("handle")}
    drawer = c.sem == names.index("drawer")
    handle = c.sem == names.index("handle")
    assert set(np.unique(c.ins[drawer])) == {1} and set(np.unique(c.ins[handle])) == {3}
    assert (c.rgb[drawer] == [255, 0, 0]).all()  # Kd colour
    assert (c.rgb[handle] == [0, 200, 0]).all()  # texture looked up at the UV
    again = read_mobility_object(root, n_points=3000, seed=3)
    other = read_mobility_object(root, n_points=3000, seed=4)
    np.testing.assert_array_equal(c.xyz, again.xyz)
    assert not np.array_equal(c.xyz, other.xyz)


def test_mesh_fallback_refuses_textures_outside_object(tmp_path):
    root = tmp_path / "obj" / "43"
    _mesh_object(root, "../../outside.png")
    c = read_mobility_object(root, n_points=500)
    handle = c.sem == part_names("StorageFurniture").index("handle")
    assert handle.any() and not (c.rgb[handle] == [0, 0, 255]).all(axis=1).any()


def test_mesh_fallback_missing_mesh(tmp_path):
    root = tmp_path / "44"
    _write_obj(root, CABINET_TREE)
    with pytest.raises(BadInputError, match="p3.obj"):
        read_mobility_object(root)


@pytest.mark.skipif(not SAMPLE.is_dir(), reason="shared PartNet-Mobility sample not present")
def test_shared_sample_object():
    c = read_mobility_object(SAMPLE)
    names = part_names("StorageFurniture")
    assert c.object_id == "StorageFurniture/40147" and c.n_points == 10000
    counts = {names[k] if k >= 0 else None: int((c.sem == k).sum()) for k in np.unique(c.sem)}
    assert counts == {None: 8554, "door": 611, "drawer": 824, "handle": 11}
    assert set(np.unique(c.ins[c.sem == names.index("handle")])) == {8, 15}
    assert set(np.unique(c.ins[c.sem == names.index("door")])) == {5}
    assert set(np.unique(c.ins[c.sem == names.index("drawer")])) == {6}
    assert np.linalg.norm(c.xyz, axis=1).max() == pytest.approx(1, abs=1e-6)


@pytest.mark.parametrize("name", ["\u00b2", "a b", "..x"])
def test_invalid_folder_name_is_bad_input(tmp_path, name):
    d = tmp_path / name
    _write_obj(d, CABINET_TREE, leaves=[3, 5])
    with pytest.raises(BadInputError) as ei:
        read_mobility_object(d)
    assert repr(name) in str(ei.value) and str(d) in str(ei.value) and "invalid object id" in str(ei.value)


def test_non_numeric_folder_name_is_fine(tmp_path):
    _write_obj(tmp_path / "cab_a", CABINET_TREE, leaves=[3, 5])
    assert read_mobility_object(tmp_path / "cab_a").object_id == "StorageFurniture/cab_a"


def test_point_sample_numbers_are_ascii_digits_only(tmp_path):
    d = tmp_path / "8"
    _write_obj(d, CABINET_TREE, leaves=[3, 5])
    ps = d / "point_sample"
    # "٣" (Arabic-Indic 3) and "²" are not sample sizes: ignored, never parsed
    for n in ("\u0663", "\u00b2"):
        (ps / f"sample-points-all-pts-nor-rgba-{n}.txt").write_text("garbage\n")
        (ps / f"sample-points-all-label-{n}.txt").write_text("garbage\n")
    assert read_mobility_object(d).n_points == 2


@pytest.mark.parametrize(
    "meta, match",
    [
        ({"model_cat": ["StorageFurniture"]}, "no model_cat string"),
        ({"model_cat": {"a": 1}}, "no model_cat string"),
        ([1, 2], "no model_cat"),
    ],
)
def test_meta_model_cat_must_be_a_string(tmp_path, meta, match):
    d = tmp_path / "9"
    _write_obj(d, CABINET_TREE, leaves=[3, 5])
    (d / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(BadInputError, match=match) as ei:
        read_mobility_object(d)
    assert str(d / "meta.json") in str(ei.value)


@pytest.mark.parametrize("text", ['[{"id": 1e999, "name": "x"}]', "[" * 100000 + "]" * 100000])
def test_hostile_result_json_is_bad_input(tmp_path, text):
    d = tmp_path / "10"
    _write_obj(d, CABINET_TREE, leaves=[3, 5])
    (d / "result.json").write_text(text)
    with pytest.raises(BadInputError) as ei:
        read_mobility_object(d)
    assert "StorageFurniture/10" in str(ei.value) and "result.json" in str(ei.value)


@pytest.mark.parametrize("mesh", ["../../../secret", "/tmp/secret", "a\\b"])
def test_mesh_names_must_stay_in_textured_objs(tmp_path, mesh):
    (tmp_path / "secret.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    d = tmp_path / "obj" / "11"
    _write_obj(d, [{"id": 0, "name": "drawer", "objs": [mesh]}])
    (d / "textured_objs").mkdir()
    with pytest.raises(BadInputError, match="not a plain file name") as ei:
        read_mobility_object(d)
    assert repr(mesh) in str(ei.value) and str(d / "result.json") in str(ei.value)
