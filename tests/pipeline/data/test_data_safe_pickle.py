import os
import pickle

import numpy as np
import pytest

from pipeline.data.safe_pickle import load_label_npy, load_npy_restricted, load_superpoint_npy, restricted_loads
from pipeline.errors import BadInputError, UnsafePickleError


def test_label_npy_round_trip(tmp_path):
    sem = np.array([0, 1, -1, 2, 2], np.int64)
    ins = np.array([0, 1, -1, 2, 3], np.int64)
    p = tmp_path / "label.npy"
    np.save(p, {"semantic_seg": sem, "instance_seg": ins}, allow_pickle=True)
    out = load_label_npy(p)
    np.testing.assert_array_equal(out["semantic_seg"], sem)
    np.testing.assert_array_equal(out["instance_seg"], ins)
    assert out["semantic_seg"].dtype == np.int16 and out["instance_seg"].dtype == np.int32


def test_label_npy_with_numpy_scalars_and_protocol2(tmp_path):
    d = {"semantic_seg": np.array([1, 0]), "instance_seg": np.array([5, 6]), "n": np.int64(2)}
    p = tmp_path / "label.npy"
    # protocol 2 pickles carry bytes through _codecs.encode; numpy scalars through multiarray.scalar
    arr = np.array(d, dtype=object)
    with open(p, "wb") as f:
        np.lib.format.write_array_header_1_0(f, np.lib.format.header_data_from_array_1_0(arr))
        pickle.dump(arr, f, protocol=2)
    out = load_label_npy(p)
    np.testing.assert_array_equal(out["semantic_seg"], [1, 0])
    np.testing.assert_array_equal(out["instance_seg"], [5, 6])


def test_label_npy_without_instances(tmp_path):
    p = tmp_path / "label.npy"
    np.save(p, {"semantic_seg": np.array([0, -1, 1])}, allow_pickle=True)
    out = load_label_npy(p)
    np.testing.assert_array_equal(out["instance_seg"], [-1, -1, -1])


class _Evil:
    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


@pytest.mark.parametrize("wrap", ["top_level", "inside_dict"])
def test_malicious_label_npy_rejected_without_running(tmp_path, wrap):
    sentinel = tmp_path / "pwned"
    evil = _Evil(f"touch {sentinel}")
    obj = evil if wrap == "top_level" else {"semantic_seg": np.array([0]), "instance_seg": evil}
    p = tmp_path / "label.npy"
    arr = np.empty((), dtype=object)
    arr[()] = obj
    np.save(p, arr, allow_pickle=True)
    with pytest.raises(UnsafePickleError) as ei:
        load_label_npy(p)
    assert not sentinel.exists()
    msg = str(ei.value)
    assert "system" in msg and str(p) in msg


def test_restricted_loads_rejects_other_globals():
    with pytest.raises(UnsafePickleError, match="builtins.eval"):
        restricted_loads(pickle.dumps(eval))
    with pytest.raises(UnsafePickleError, match="collections.OrderedDict"):
        import collections

        restricted_loads(pickle.dumps(collections.OrderedDict(a=1)))


def test_label_npy_bad_content(tmp_path):
    p = tmp_path / "label.npy"
    np.save(p, np.array([1, 2, 3]))
    with pytest.raises(BadInputError, match="dict"):
        load_label_npy(p)
    np.save(p, {"semantic_seg": np.array([0, 1]), "instance_seg": np.array([0])}, allow_pickle=True)
    with pytest.raises(BadInputError, match="instance_seg"):
        load_label_npy(p)
    np.save(p, {"instance_seg": np.array([0])}, allow_pickle=True)
    with pytest.raises(BadInputError, match="semantic_seg"):
        load_label_npy(p)
    p.write_bytes(b"not an npy file at all")
    with pytest.raises(BadInputError, match=str(p)):
        load_label_npy(p)


def test_truncated_pickle_payload(tmp_path):
    p = tmp_path / "label.npy"
    np.save(p, {"semantic_seg": np.arange(100)}, allow_pickle=True)
    p.write_bytes(p.read_bytes()[:-40])
    with pytest.raises(BadInputError, match="corrupt pickle"):
        load_label_npy(p)


def test_plain_arrays_load_without_pickle(tmp_path):
    p = tmp_path / "a.npy"
    np.save(p, np.arange(6, dtype=np.int32).reshape(2, 3))
    np.testing.assert_array_equal(load_npy_restricted(p), np.arange(6).reshape(2, 3))


def test_superpoint_ragged_object_array(tmp_path):
    lists = [[0, 3, 5], [1], [2, 4]]
    arr = np.empty(len(lists), dtype=object)
    arr[:] = lists
    p = tmp_path / "superpoint.npy"
    np.save(p, arr, allow_pickle=True)
    sp, n = load_superpoint_npy(p)
    assert n == 6 and sp.dtype == np.int32
    np.testing.assert_array_equal(sp, [0, 1, 2, 0, 2, 0])


def test_superpoint_equal_length_int_array(tmp_path):
    p = tmp_path / "superpoint.npy"
    np.save(p, np.array([[3, 0], [1, 2]]))
    sp, n = load_superpoint_npy(p, n_points=4)
    assert n == 4
    np.testing.assert_array_equal(sp, [0, 1, 1, 0])


def test_superpoint_equal_length_object_array(tmp_path):
    p = tmp_path / "superpoint.npy"
    np.save(p, np.array([[1, 0], [2, 3]], dtype=object), allow_pickle=True)
    sp, n = load_superpoint_npy(p)
    np.testing.assert_array_equal(sp, [0, 0, 1, 1])


def test_superpoint_empty_groups_are_dropped(tmp_path):
    arr = np.empty(3, dtype=object)
    arr[:] = [[0], [], [1, 2]]
    p = tmp_path / "superpoint.npy"
    np.save(p, arr, allow_pickle=True)
    sp, _ = load_superpoint_npy(p)
    np.testing.assert_array_equal(sp, [0, 1, 1])


@pytest.mark.parametrize("lists, n_points, match", [
    ([[0, 1], [1, 2]], None, "more than one"),
    ([[0], [2]], None, "no superpoint"),
    ([[0, 1], [2, 9]], 4, "out of range"),
    ([[0, 1], ["a"]], None, "list of ints"),
    ([[0, 1], [2.5]], None, "list of ints"),
])
def test_superpoint_invalid(tmp_path, lists, n_points, match):
    arr = np.empty(len(lists), dtype=object)
    arr[:] = lists
    p = tmp_path / "superpoint.npy"
    np.save(p, arr, allow_pickle=True)
    with pytest.raises(BadInputError, match=match):
        load_superpoint_npy(p, n_points=n_points)


def test_malicious_superpoint_rejected(tmp_path):
    sentinel = tmp_path / "pwned"
    arr = np.empty(2, dtype=object)
    arr[:] = [[0], _Evil(f"touch {sentinel}")]
    p = tmp_path / "superpoint.npy"
    np.save(p, arr, allow_pickle=True)
    with pytest.raises(UnsafePickleError):
        load_superpoint_npy(p)
    assert not sentinel.exists()
