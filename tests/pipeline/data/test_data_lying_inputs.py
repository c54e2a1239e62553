"""Readers of PartNetE / PartNet-Mobility objects: files that lie about themselves are errors.

A label.npy that is a FIFO, a directory or a symlink loop used to make the object unlabelled
without a word (`Path.is_file()` said "absent"); .npy headers that disagree with their payload
were read as whatever the payload held.
"""

import os
import pickle

import numpy as np
import pytest

import pipeline.data.mobility as mobility
from pipeline.data.mobility import read_mobility_object
from pipeline.data.partnete import list_partnete, read_partnete_object
from pipeline.data.ply import write_ply
from pipeline.data.safe_pickle import load_label_npy, load_npy_restricted
from pipeline.errors import BadInputError
from tests.pipeline.data.test_data_mobility import CABINET_TREE, _write_obj


def _partnete_object(d, n=30):
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    write_ply(d / "pc.ply", rng.normal(size=(n, 3)).astype(np.float32), rng.integers(0, 256, (n, 3)))
    return d


def _make_special(p, kind):
    if kind == "fifo":
        os.mkfifo(p)
    elif kind == "directory":
        p.mkdir()
    elif kind == "symlink_loop":
        os.symlink(p, p)
    elif kind == "broken_symlink":
        os.symlink(p.parent / "gone.npy", p)


KINDS = [("fifo", "FIFO"), ("directory", "directory"), ("symlink_loop", "too many levels"), ("broken_symlink", "broken symlink")]


@pytest.mark.parametrize("kind, says", KINDS)
def test_label_npy_that_is_not_a_regular_file_fails_the_object(tmp_path, kind, says):
    d = _partnete_object(tmp_path / "data" / "test" / "Chair" / "7")
    _make_special(d / "label.npy", kind)
    with pytest.raises(BadInputError) as ei:
        read_partnete_object(d, "Chair", "7")
    msg = str(ei.value)
    assert "object Chair/7" in msg and str(d / "label.npy") in msg and says.lower() in msg.lower(), msg


def test_object_without_label_npy_is_still_unlabelled(tmp_path):
    d = _partnete_object(tmp_path / "o")
    c = read_partnete_object(d, "Chair", "7")
    assert c.sem is None and c.ins is None and c.n_points == 30


@pytest.mark.parametrize("kind, says", KINDS[:3])
def test_pc_ply_that_is_not_a_regular_file_is_not_reported_missing(tmp_path, kind, says):
    d = tmp_path / "o"
    d.mkdir()
    _make_special(d / "pc.ply", kind)
    with pytest.raises(BadInputError) as ei:
        read_partnete_object(d, "Chair", "7")
    assert "object Chair/7" in str(ei.value) and says.lower() in str(ei.value).lower()
    assert "missing" not in str(ei.value)


def test_val_list_json_fifo_is_an_error_not_absent(tmp_path):
    _partnete_object(tmp_path / "data" / "test" / "Chair" / "7")
    os.mkfifo(tmp_path / "val_list.json")
    with pytest.raises(BadInputError, match="FIFO") as ei:
        list_partnete(tmp_path)
    assert str(tmp_path / "val_list.json") in str(ei.value)


def _header(f, shape, descr):
    np.lib.format.write_array_header_1_0(f, {"descr": descr, "fortran_order": False, "shape": shape})


def test_plain_npy_with_trailing_bytes_is_refused(tmp_path):
    p = tmp_path / "a.npy"
    np.save(p, np.arange(6, dtype=np.int32))
    np.testing.assert_array_equal(load_npy_restricted(p), np.arange(6))
    with open(p, "ab") as f:
        f.write(b"\0" * 8)  # two more int32 the header does not declare
    with pytest.raises(BadInputError, match=r"holds 32 bytes of data \(8 trailing\)") as ei:
        load_npy_restricted(p)
    assert str(p) in str(ei.value)


def test_object_npy_header_shape_must_match_the_pickled_array(tmp_path):
    labels = np.empty(3, dtype=object)
    labels[:] = [{"semantic_seg": np.zeros(2, int)}] * 3
    p = tmp_path / "label.npy"
    with open(p, "wb") as f:
        _header(f, (), "|O")  # says one 0-d dict; the pickle holds a (3,) array
        pickle.dump(labels, f, protocol=3)
    with pytest.raises(BadInputError, match=r"declares shape \(\) object but the pickled payload is shape \(3,\)"):
        load_label_npy(p)


def test_object_npy_with_bytes_after_the_pickle_is_refused(tmp_path):
    p = tmp_path / "label.npy"
    np.save(p, {"semantic_seg": np.array([0, 1, -1])}, allow_pickle=True)
    assert load_label_npy(p)["semantic_seg"].tolist() == [0, 1, -1]
    with open(p, "ab") as f:
        f.write(b"more labels")
    with pytest.raises(BadInputError, match="11 bytes after its pickled payload"):
        load_label_npy(p)


@pytest.mark.parametrize("which", ["meta.json", "result.json", "pts", "label"])
def test_mobility_fifo_inputs_fail_the_object(tmp_path, which):
    d = tmp_path / "42"
    _write_obj(d, CABINET_TREE, leaves=[3, 5, 6, 8])
    ps = d / "point_sample"
    target = {
        "meta.json": d / "meta.json",
        "result.json": d / "result.json",
        "pts": ps / "sample-points-all-pts-nor-rgba-4.txt",
        "label": ps / "sample-points-all-label-4.txt",
    }[which]
    target.unlink()
    os.mkfifo(target)
    with pytest.raises(BadInputError, match="FIFO") as ei:
        read_mobility_object(d)
    assert str(target) in str(ei.value)


def test_mobility_points_file_over_the_cap_fails_the_object(tmp_path, monkeypatch):
    d = tmp_path / "42"
    _write_obj(d, CABINET_TREE, leaves=[3, 5, 6, 8])
    size = (d / "point_sample" / "sample-points-all-pts-nor-rgba-4.txt").stat().st_size
    monkeypatch.setattr(mobility, "MAX_SAMPLE_BYTES", size - 1)
    with pytest.raises(BadInputError, match=f"{size} bytes, larger than the {size - 1}-byte cap") as ei:
        read_mobility_object(d)
    assert "object StorageFurniture/42" in str(ei.value)


def test_mobility_mesh_that_is_a_directory_fails_the_object(tmp_path):
    d = tmp_path / "42"
    _write_obj(d, [{"id": 0, "name": "cabinet", "objs": ["m"]}])
    (d / "textured_objs" / "m.obj").mkdir(parents=True)
    with pytest.raises(BadInputError, match="directory") as ei:
        read_mobility_object(d)
    assert "object StorageFurniture/42" in str(ei.value) and "m.obj" in str(ei.value)


@pytest.mark.parametrize("kind, says", KINDS[:3])
def test_own_shape_labels_that_are_not_a_regular_file_fail_the_object(tmp_path, kind, says):
    from pipeline.data.shapes import read_shape

    rng = np.random.default_rng(0)
    write_ply(tmp_path / "scan.ply", rng.normal(size=(40, 3)).astype(np.float32))
    _make_special(tmp_path / "scan.labels.npy", kind)
    with pytest.raises(BadInputError) as ei:
        read_shape(tmp_path / "scan.ply", category="Chair", object_id="Chair/scan", part_names=("back", "seat"), n_points=20)
    assert "object Chair/scan" in str(ei.value) and "scan.labels.npy" in str(ei.value)
    assert says.lower() in str(ei.value).lower()
