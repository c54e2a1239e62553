import json
import os

import numpy as np
import pytest

from pipeline.data.ids import is_valid_object_id
from pipeline.data.partnete import list_partnete, read_partnete_object
from pipeline.data.ply import write_ply
from pipeline.errors import BadInputError, UnsafePickleError


def _write_object(d, n=40, seed=0, labels=True, k=5):
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True, exist_ok=True)
    xyz = rng.normal(size=(n, 3)) * 10 + 50
    rgb = rng.integers(0, 256, (n, 3)).astype(np.uint8)
    write_ply(d / "pc.ply", xyz.astype(np.float32), rgb)
    sem = rng.integers(-1, k, n)
    ins = np.where(sem >= 0, np.arange(n), -1)
    if labels:
        np.save(d / "label.npy", {"semantic_seg": sem, "instance_seg": ins}, allow_pickle=True)
    return xyz.astype(np.float32).astype(np.float64), rgb, sem, ins


def _tree(root):
    for split, cat, oid in [
        ("few_shot", "Chair", "12"),
        ("few_shot", "Chair", "3"),
        ("test", "Chair", "179"),
        ("test", "Chair", "20"),
        ("test", "Bottle", "7"),
        ("test", "NotACategory", "1"),
    ]:
        _write_object(root / "data" / split / cat / oid)
    (root / "data" / "test" / "Chair" / "stray.txt").write_text("not a dir")


def test_list_partnete_splits(tmp_path):
    _tree(tmp_path)
    rows = list_partnete(tmp_path, val_ids={"Chair": ["179"]})
    got = [(c, o, s) for c, o, s, _ in rows]
    assert got == [
        ("Bottle", "7", "test"),
        ("Chair", "3", "fewshot"),
        ("Chair", "12", "fewshot"),
        ("Chair", "20", "test"),
        ("Chair", "179", "val"),
    ]
    assert rows[0][3] == tmp_path / "data" / "test" / "Bottle" / "7"


def test_list_partnete_reads_val_list_json_and_filters(tmp_path):
    _tree(tmp_path)
    (tmp_path / "val_list.json").write_text(json.dumps({"Chair": ["20"]}))
    rows = list_partnete(tmp_path, categories=["Chair"])
    assert {(o, s) for _, o, s, _ in rows} == {("3", "fewshot"), ("12", "fewshot"), ("20", "val"), ("179", "test")}


def test_list_partnete_empty_root(tmp_path):
    assert list_partnete(tmp_path) == []


def test_read_partnete_object(tmp_path):
    d = tmp_path / "data" / "test" / "Chair" / "179"
    xyz, rgb, sem, ins = _write_object(d, n=64)
    c = read_partnete_object(d, "Chair", "179")
    assert c.object_id == "Chair/179" and c.category == "Chair" and c.source == "partnete"
    np.testing.assert_array_equal(c.rgb, rgb)
    np.testing.assert_array_equal(c.sem, sem)
    np.testing.assert_array_equal(c.ins, ins)
    np.testing.assert_allclose(c.xyz.mean(0), 0, atol=1e-6)
    assert np.linalg.norm(c.xyz, axis=1).max() == pytest.approx(1, abs=1e-6)
    np.testing.assert_allclose(c.raw_xyz(), xyz, atol=1e-4)


def test_read_partnete_object_without_labels(tmp_path):
    d = tmp_path / "obj"
    _write_object(d, labels=False)
    c = read_partnete_object(d, "Chair", "5")
    assert c.sem is None and c.ins is None and c.n_points == 40


def test_read_partnete_errors_name_object_and_file(tmp_path):
    d = tmp_path / "obj"
    _write_object(d, n=10, k=5)
    np.save(d / "label.npy", {"semantic_seg": np.zeros(9, int)}, allow_pickle=True)
    with pytest.raises(BadInputError) as ei:
        read_partnete_object(d, "Chair", "9")
    assert "Chair/9" in str(ei.value) and "label.npy" in str(ei.value)
    # label id 1 does not exist for Bottle (K = 1)
    np.save(d / "label.npy", {"semantic_seg": np.ones(10, int)}, allow_pickle=True)
    with pytest.raises(BadInputError, match="out of range"):
        read_partnete_object(d, "Bottle", "9")
    os.remove(d / "pc.ply")
    with pytest.raises(BadInputError, match="missing pc.ply"):
        read_partnete_object(d, "Chair", "9")


def test_read_partnete_corrupt_ply_and_unsafe_label(tmp_path):
    d = tmp_path / "obj"
    _write_object(d)
    data = (d / "pc.ply").read_bytes()
    (d / "pc.ply").write_bytes(data[:-5])
    with pytest.raises(BadInputError) as ei:
        read_partnete_object(d, "Chair", "1")
    assert "Chair/1" in str(ei.value) and "pc.ply" in str(ei.value)
    _write_object(d)

    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    arr = np.empty((), dtype=object)
    arr[()] = {"semantic_seg": Evil()}
    np.save(d / "label.npy", arr, allow_pickle=True)
    with pytest.raises(UnsafePickleError, match="Chair/1"):
        read_partnete_object(d, "Chair", "1")


def test_list_partnete_odd_folder_names_do_not_crash(tmp_path):
    # "²".isdigit() is True but int("²") fails; invalid ids are still listed (callers validate)
    names = ["\u00b2", "chair_a", "10", "007", "2", "a b", "9" * 200]
    for oid in names:
        (tmp_path / "data" / "test" / "Chair" / oid).mkdir(parents=True)
    rows = list_partnete(tmp_path)
    assert [o for _, o, _, _ in rows] == ["2", "007", "10", "9" * 200, "a b", "chair_a", "\u00b2"]
    assert all(p == tmp_path / "data" / "test" / "Chair" / o for _, o, _, p in rows)
    assert [o for _, o, _, p in rows if not is_valid_object_id(o)] == ["9" * 200, "a b", "\u00b2"]


def test_read_partnete_object_refuses_invalid_id(tmp_path):
    d = tmp_path / "data" / "test" / "Chair" / "\u00b2"
    _write_object(d)
    with pytest.raises(BadInputError) as ei:
        read_partnete_object(d, "Chair", "\u00b2")
    assert "'²'" in str(ei.value) and str(d) in str(ei.value) and "non-ASCII" in str(ei.value)


def test_read_partnete_object_accepts_non_numeric_id(tmp_path):
    d = tmp_path / "data" / "test" / "Chair" / "chair_a"
    _write_object(d)
    assert read_partnete_object(d, "Chair", "chair_a").object_id == "Chair/chair_a"


def test_list_partnete_id_in_two_splits_is_an_error(tmp_path):
    _tree(tmp_path)
    _write_object(tmp_path / "data" / "few_shot" / "Bottle" / "7")  # also in test/Bottle
    with pytest.raises(BadInputError) as ei:
        list_partnete(tmp_path)
    msg = str(ei.value)
    assert "'7'" in msg and "Bottle" in msg and "two splits" in msg
    assert str(tmp_path / "data" / "few_shot" / "Bottle" / "7") in msg
    assert str(tmp_path / "data" / "test" / "Bottle" / "7") in msg
    assert ei.value.object_id == "Bottle/7"
    # the same id in another category, or a category that is not listed, is fine
    assert len(list_partnete(tmp_path, categories=["Chair"])) == 4
    _write_object(tmp_path / "data" / "few_shot" / "Chair" / "7")
    assert ("Chair", "7", "fewshot") in [r[:3] for r in list_partnete(tmp_path, categories=["Chair"])]


def test_val_list_values_must_be_lists(tmp_path):
    _tree(tmp_path)
    (tmp_path / "val_list.json").write_text(json.dumps({"Chair": 179}))
    with pytest.raises(BadInputError, match="val_list.json"):
        list_partnete(tmp_path)
    (tmp_path / "val_list.json").write_text("[" * 100000)
    with pytest.raises(BadInputError, match="cannot read val list"):
        list_partnete(tmp_path)
