"""Your own shapes end to end (issue 10): packaged defaults, -S overrides, `ingest --source files`,
`partstad predict` with GLB + JSON sidecar exports and provenance, and the bad-input cases.

Everything runs from a directory without params.yaml (packaged defaults + -S), in-process.
"""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from own_shapes import coloured_ply_points, part_glb, textured_box_obj  # noqa: E402

from pipeline.data.ply import read_ply  # noqa: E402
from pipeline.meta import part_names  # noqa: E402
from pipeline.viz_labels import label_palette  # noqa: E402
from stages.provenance import DETECTOR, SAM  # noqa: E402
from stages.stage_table import chain
from stages.store import CategoryStore  # noqa: E402

CAT = "Chair"
N = 1200
TINY = ["-S", "render.image_size=64", "-S", "render.views=[[10, 0], [10, 120], [10, 240]]", "-S", f"data.n_points={N}"]
TRAIN = [*TINY, "-S", "data.n_fewshot=2", "-S", "data.n_val=0", "-S", "data.n_test=0", "-S", "train.epochs=2"]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A directory without params.yaml holding a model trained on 2 synthetic shapes (2 epochs)."""
    from click.testing import CliRunner

    from stages.cli import main

    root = tmp_path_factory.mktemp("own")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        for stage in chain("train"):
            res = CliRunner().invoke(main, [stage, "--category", CAT, *TRAIN])
            assert res.exit_code == 0, (stage, res.output, res.exception)
    return root


def _labelled_shapes(folder: Path) -> dict[str, Path]:
    """A textured .obj (labels per face), a coloured .ply point cloud (labels per point), a .glb of named parts."""
    obj = textured_box_obj(folder)
    centres = trimesh.load(obj, force="mesh", process=False).triangles_center
    np.save(folder / "crate.labels.npy", np.where(centres[:, 0] > 10.0, 3, 1).astype(np.int64))  # seat | back
    ply = coloured_ply_points(folder, n=1500)
    z = np.asarray(trimesh.load(ply).vertices)[:, 2]
    np.save(folder / "scan.labels.npy", np.where(z > 0, 1, 2).astype(np.int64))  # back | leg
    glb = part_glb(folder)
    return {"crate": obj, "scan": ply, "stool": glb}


def test_predict_own_shapes_from_a_folder_without_params(work, tmp_path, invoke, monkeypatch):
    monkeypatch.chdir(work)
    assert not (work / "params.yaml").exists()
    shapes = _labelled_shapes(tmp_path / "shapes")
    out = tmp_path / "pred"
    res = invoke(["predict", tmp_path / "shapes", "--category", CAT, "--model-dir", work / "models" / CAT, "--out", out, *TINY])
    assert res.exit_code == 0, res.output
    assert "[predict] wrote 3 object(s)" in res.output
    K = len(part_names(CAT))
    palette = label_palette(K)
    ing = CategoryStore(str(work / "cache" / "predict"), "ingest", CAT)  # predict keeps its own namespace
    for stem in shapes:
        base = out / f"{CAT}_{stem}_partstad"
        sem = np.load(f"{base}_semantic.npy")
        ins = np.load(f"{base}_instance.npy")
        n = ing.attrs(f"{CAT}/{stem}")["n_points"]
        assert n == N  # meshes sampled to N, the 1500-point cloud subsampled to N
        assert sem.shape == (N,) and ins.shape == (N,) and sem.min() >= -1 and sem.max() < K
        ply = read_ply(base.with_suffix(".ply"))
        np.testing.assert_array_equal(ply.rgb, palette[sem + 1])
        side = json.loads(base.with_suffix(".json").read_text())
        assert {
            "object",
            "category",
            "part_names",
            "colours",
            "semantic",
            "instance",
            "instances",
            "provenance",
            "files",
            "source_file",
        } <= set(side)
        assert side["part_names"] == list(part_names(CAT)) and side["semantic"] == sem.tolist() and side["instance"] == ins.tolist()
        assert side["colours"]["unlabelled"] == palette[0].tolist() and side["colours"]["seat"] == palette[4].tolist()
        assert all(0.0 <= i["confidence"] <= 1.0 and i["n_points"] == int((ins == i["id"]).sum()) for i in side["instances"])
        prov = side["provenance"]
        assert prov["detector"]["backend"] == "oracle" and prov["sam"]["mode"] == "oracle" and len(prov["params_hash"]) == 12
        assert any("detector" in c for c in prov["simulated_components"]) and prov["models"]["weights"] == "partstad.safetensors"
        assert prov["data_source"] == "files"  # what the cached shapes came from, not the packaged default
        glb = trimesh.load(io.BytesIO(base.with_suffix(".glb").read_bytes()), file_type="glb", force="scene")
        names = {**{n: k for k, n in enumerate(part_names(CAT))}, "unlabelled": -1}
        for node in glb.graph.nodes_geometry:
            geom = glb.geometry[glb.graph[node][1]]
            colours = np.asarray(geom.colors if isinstance(geom, trimesh.PointCloud) else geom.visual.vertex_colors)[:, :3]
            assert (colours == palette[names[node] + 1]).all()
        kinds = {type(g).__name__ for g in glb.geometry.values()}
        if stem == "scan":
            assert kinds == {"PointCloud"} and sum(len(g.vertices) for g in glb.geometry.values()) == N
        else:
            assert kinds == {"Trimesh"}
            assert sum(len(g.faces) for g in glb.geometry.values()) == ing.attrs(f"{CAT}/{stem}")["n_faces"]
    # back in the file's coordinates: the crate box is centred at (10, -3, 5)
    xyz = read_ply(out / f"{CAT}_crate_partstad.ply").xyz
    assert np.allclose(xyz.mean(0), (10.0, -3.0, 5.0), atol=0.1) and xyz[:, 0].min() >= 9.0 - 1e-6 and xyz[:, 0].max() <= 11.0 + 1e-6
    # the texture's colours made it into the cache (red left half, blue right half), labels per face too
    rgb = ing.read(f"{CAT}/crate", "rgb").astype(int)
    assert ((rgb[:, 0] > 2 * rgb[:, 2]).sum() > 100) and ((rgb[:, 2] > 2 * rgb[:, 0]).sum() > 100)
    assert set(np.unique(ing.read(f"{CAT}/crate", "sem"))) == {1, 3}
    assert ing.attrs(f"{CAT}/stool")["labels_from"] == "part groups"
    # provenance in the metrics and the report: the simulated detector and SAM are named
    metrics = json.loads((out / "metrics" / "evaluate" / f"{CAT}.json").read_text())
    assert metrics["simulated"] is True and metrics["provenance"]["detector"]["backend"] == "oracle"
    assert metrics["provenance"]["simulated_components"] == [DETECTOR, SAM]  # own shapes: no synthetic-shape claim
    res = invoke(["report", "--category", CAT, "--metrics", out / "metrics", "--plots", tmp_path / "none", "--out", tmp_path / "rep"])
    assert res.exit_code == 0, res.output
    html = (tmp_path / "rep" / "index.html").read_text()
    assert (
        "Simulated components produced these numbers" in html
        and "synthetic generator" not in html
        and "detector oracle; masks oracle" in html
    )


def test_provenance_says_simulated_exactly_when_a_simulated_component_ran():
    from stages.config import PipelineConfig, config_hash
    from stages.provenance import describe, provenance

    real = PipelineConfig.model_validate(
        {
            "detect": {"backend": "grounding_dino", "weights_dir": "/w/gdino"},
            "segment": {"mode": "sam", "sam_checkpoint": "/w/sam_vit_b.pth"},
            "data": {"source": "files"},
        }
    )
    rec = provenance(real, [], {"dir": "models/Chair"})
    assert "simulated" not in json.dumps(rec).lower() and "simulated" not in describe(rec).lower()
    assert rec["detector"] == {"backend": "grounding_dino", "weights_dir": "/w/gdino"} and rec["sam"]["checkpoint"] == "/w/sam_vit_b.pth"
    assert rec["params_hash"] == config_hash(real) and describe(
        rec
    ) == "detector grounding_dino (/w/gdino); masks sam (vit_b, /w/sam_vit_b.pth); model models/Chair; params " + config_hash(real)
    sim = provenance(PipelineConfig(), [DETECTOR])
    assert sim["simulated_components"] == [DETECTOR] and "simulated: detector" in describe(sim)


def test_bad_shapes_fail_alone_and_are_named(work, tmp_path, invoke, monkeypatch):
    monkeypatch.chdir(work)
    folder = tmp_path / "mixed"
    coloured_ply_points(folder, "good", n=900)
    (folder / "broken.glb").write_bytes(b"glTF\x02\x00\x00\x00garbage")
    (folder / "flat.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\n")
    np.save(folder / "good.labels.npy", np.zeros(900, np.int64))
    res = invoke(["predict", folder, "--category", CAT, "--model-dir", work / "models", "--out", tmp_path / "out", *TINY])
    assert res.exit_code == 1, res.output
    assert "FAILED Chair/broken" in res.output and "broken.glb" in res.output
    assert "FAILED Chair/flat" in res.output and "mesh has no faces" in res.output and "flat.obj" in res.output
    assert (tmp_path / "out" / f"{CAT}_good_partstad.glb").is_file() and "wrote 1 object(s)" in res.output


def test_empty_folder_and_unknown_category(work, tmp_path, invoke, monkeypatch):
    monkeypatch.chdir(work)
    (tmp_path / "empty").mkdir()
    res = invoke(["predict", tmp_path / "empty", "--category", CAT, "--model-dir", work / "models" / CAT, "--out", tmp_path / "o"])
    assert res.exit_code == 1 and "holds no shape files" in res.output and str(tmp_path / "empty") in res.output
    ply = coloured_ply_points(tmp_path / "s", "x", n=300)
    res = invoke(["predict", ply, "--category", "Spaceship", "--model-dir", work / "models" / CAT, "--out", tmp_path / "o2"])
    assert res.exit_code == 2 and "Spaceship" in res.output and "part names" in res.output and not (tmp_path / "o2").exists()
    res = invoke(["predict", ply, "--category", CAT, "--model-dir", tmp_path / "s", "--out", tmp_path / "o3"])
    assert res.exit_code == 2 and "no trained weights" in res.output


def test_own_category_with_part_names_and_splits_file(tmp_path, invoke, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "mugs"
    part_glb(folder, "m1", names=("handle", "body"))
    part_glb(folder, "m2", names=("body", "handle_1", "handle_2"))
    (folder / "splits.yaml").write_text("m1: fewshot\n")
    cmd = ["ingest", "--source", "files", "--root", folder, "--category", "Mug", "-S", "data.n_points=500"]
    res = invoke(cmd)
    assert res.exit_code == 2 and "Mug" in res.output and "part names" in res.output and not (tmp_path / "cache").exists()
    res = invoke([*cmd, "-S", "data.part_names={Mug: [body, handle]}"])
    assert res.exit_code == 0, res.output
    rows = {r["object"]: r["split"] for r in json.loads((tmp_path / "cache/ingest/Mug.zarr/manifest.json").read_text())}
    assert rows == {"Mug/m1": "fewshot", "Mug/m2": "test"}
    st = CategoryStore("cache", "ingest", "Mug")
    assert st.attrs("Mug/m2")["parts"] == ["body", "handle"] and set(np.unique(st.read("Mug/m2", "sem"))) == {0, 1}
    assert len(np.unique(st.read("Mug/m2", "ins"))) == 3  # one instance per piece
    (folder / "splits.yaml").write_text("m1: training\n")
    res = invoke([*cmd, "-S", "data.part_names={Mug: [body, handle]}"])
    assert res.exit_code == 2 and "splits.yaml" in res.output and "training" in res.output


def test_set_overrides_give_the_keys_of_the_same_params_file(tmp_path, invoke, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = invoke(
        ["ingest", "--category", CAT, "-S", "data.n_points=400", "-S", "data.n_fewshot=1", "-S", "data.n_val=0", "-S", "data.n_test=0"]
    )
    assert res.exit_code == 0, res.output
    by_set = CategoryStore("cache", "ingest", CAT).stored_fingerprint(f"{CAT}/0000")
    (tmp_path / "p.yaml").write_text("data:\n  n_points: 400\n  n_fewshot: 1\n  n_val: 0\n  n_test: 0\n")
    res = invoke(["ingest", "--category", CAT, "--params", tmp_path / "p.yaml", "--cache", "cache2"])
    assert res.exit_code == 0, res.output
    assert CategoryStore("cache2", "ingest", CAT).stored_fingerprint(f"{CAT}/0000") == by_set
    res = invoke(["render", "--category", CAT, "-S", "render.image_sz=64", "--cache", "cache3"])
    assert res.exit_code == 2 and "render.image_sz: unknown key" in res.output and not (tmp_path / "cache3").exists()
    res = invoke(["render", "--category", CAT, "-S", "render.image_size", "--cache", "cache3"])
    assert res.exit_code == 2 and "key=value" in res.output
    res = invoke(["render", "--params", "params.yaml", "--cache", "cache3"])  # explicit but missing: still an error
    assert res.exit_code == 2 and "params file not found: params.yaml" in res.output


def test_ingest_of_a_root_without_category_covers_every_category(tmp_path, invoke, monkeypatch):
    from pipeline.data.ply import write_ply

    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    for cat, oid in (("Chair", "1"), ("Bottle", "2"), ("Spaceship", "3")):
        d = tmp_path / "PartNetE" / "data" / "test" / cat / oid
        d.mkdir(parents=True)
        write_ply(d / "pc.ply", rng.normal(size=(200, 3)).astype(np.float32), rng.integers(0, 255, (200, 3)).astype(np.uint8))
    res = invoke(["ingest", "--source", "partnete", "--root", tmp_path / "PartNetE"])
    assert res.exit_code == 0, res.output
    assert "[ingest] Bottle: 1 computed" in res.output and "[ingest] Chair: 1 computed" in res.output
    assert sorted(p.name for p in (tmp_path / "cache" / "ingest").glob("*.zarr")) == ["Bottle.zarr", "Chair.zarr"]
