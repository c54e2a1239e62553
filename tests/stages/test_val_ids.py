"""``data.val_ids``: per category, the PartNetE *test* ids that are validation shapes (SPEC §1.3).

It replaces ``<root>/val_list.json``; through ``partstad ingest -S data.val_ids=...`` the
manifest marks exactly those test shapes ``val``. A list (the old type), a misspelt category
or an unquoted id is exit 2 naming the key, before anything is written.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline.data.ply import write_ply

CAT = "Chair"
FEWSHOT, TEST = ["3", "12"], ["20", "179", "205"]


def _partnete(root):
    """A PartNetE root with 2 few-shot and 3 test chairs of 60 labelled points each."""
    rng = np.random.default_rng(0)
    for split, ids in (("few_shot", FEWSHOT), ("test", TEST)):
        for oid in ids:
            d = root / "data" / split / CAT / oid
            d.mkdir(parents=True)
            write_ply(d / "pc.ply", rng.normal(size=(60, 3)).astype(np.float32), rng.integers(0, 256, (60, 3)).astype(np.uint8))
            sem = rng.integers(-1, 4, 60)
            np.save(d / "label.npy", {"semantic_seg": sem, "instance_seg": np.where(sem >= 0, sem, -1)}, allow_pickle=True)
    return root


def _splits(cache) -> dict[str, str]:
    manifest = json.loads((cache / "ingest" / f"{CAT}.zarr" / "manifest.json").read_text())
    return {r["object"].split("/")[1]: r["split"] for r in manifest}


@pytest.fixture
def setup(tmp_path, write_params):
    root = _partnete(tmp_path / "PartNetE")
    params = write_params(tmp_path, data={"source": "partnete", "root": str(root)})
    return tmp_path, root, params


def test_val_ids_mark_those_test_shapes_val(setup, run):
    tmp, _root, params = setup
    run(["ingest", "--params", params, "--cache", tmp / "cache", "-S", "data.val_ids={Chair: ['179', '20']}"])
    assert _splits(tmp / "cache") == {"3": "fewshot", "12": "fewshot", "20": "val", "179": "val", "205": "test"}


def test_val_ids_replace_val_list_json(setup, run):
    tmp, root, params = setup
    (root / "val_list.json").write_text(json.dumps({CAT: ["205"]}))
    run(["ingest", "--params", params, "--cache", tmp / "a"])
    assert _splits(tmp / "a")["205"] == "val" and _splits(tmp / "a")["179"] == "test"
    run(["ingest", "--params", params, "--cache", tmp / "b", "-S", "data.val_ids={Chair: ['179']}"])
    assert _splits(tmp / "b") == {"3": "fewshot", "12": "fewshot", "20": "test", "179": "val", "205": "test"}


@pytest.mark.parametrize(
    "value, named",
    [
        ("['179', '20']", "data.val_ids"),  # the old list type: which category?
        ("{Chiar: ['179']}", "Chiar"),  # misspelt category: its shapes would stay unmarked
        ("{Chair: [179]}", "data.val_ids.Chair.0"),  # YAML int: 0012 would read as 10, so ids are quoted
    ],
)
def test_bad_val_ids_exit_2_naming_the_key(setup, invoke, value, named):
    tmp, _root, params = setup
    res = invoke(["ingest", "--params", params, "--cache", tmp / "cache", "-S", f"data.val_ids={value}"])
    assert res.exit_code == 2, res.output
    assert named in res.output and "Traceback" not in res.output
    assert not (tmp / "cache").exists()


@pytest.mark.parametrize(
    "value, named",
    [
        ("{Chair: ['3']}", "few-shot shapes 3"),  # a few-shot shape cannot validate
        ("{Chair: ['179', '999']}", "no shape under data/test/Chair: 999"),  # a typo or another release
    ],
)
def test_val_ids_naming_no_test_shape_fail_naming_them(setup, invoke, value, named):
    tmp, _root, params = setup
    res = invoke(["ingest", "--params", params, "--cache", tmp / "cache", "-S", f"data.val_ids={value}"])
    assert res.exit_code != 0, res.output
    assert named in res.output and "data.val_ids" in res.output and "Traceback" not in res.output


def test_val_list_json_naming_a_missing_shape_names_the_file(setup, invoke):
    tmp, root, params = setup
    (root / "val_list.json").write_text(json.dumps({CAT: ["205", "7"], "Lamp": ["1"]}))  # no Lamp data: ignored
    res = invoke(["ingest", "--params", params, "--cache", tmp / "cache"])
    assert res.exit_code != 0 and "val_list.json" in res.output and ": 7" in res.output, res.output
