import os
import pickle
import struct
import time
import tracemalloc

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


@pytest.mark.parametrize(
    "lists, n_points, match",
    [
        ([[0, 1], [1, 2]], None, "more than one"),
        ([[0], [2]], None, "no superpoint"),
        ([[0, 1], [2, 9]], 4, "out of range"),
        ([[0, 1], ["a"]], None, "list of ints"),
        ([[0, 1], [2.5]], None, "list of ints"),
    ],
)
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


# --- size bounds: a tiny file must not make numpy allocate what its header/pickle declares ---

_MA = b"numpy._core.multiarray"


def _i32(n):
    return b"J" + struct.pack("<i", n)


def _dtype(code):
    return b"cnumpy\ndtype\nU" + bytes([len(code)]) + code + b"\x89\x88\x87R"  # dtype(code, False, True)


def _array_pickle(recon_shape, state_shape, code, raw):
    """Protocol-2 opcodes of an ndarray pickle: _reconstruct(ndarray, recon_shape, 'b') then
    __setstate__((1, state_shape, dtype(code), False, raw)) -- what numpy writes, with the
    shapes under our control."""
    return (
        b"\x80\x02c"
        + _MA
        + b"\n_reconstruct\ncnumpy\nndarray\n"
        + _i32(recon_shape)
        + b"\x85U\x01b\x87R"
        + b"(K\x01"
        + _i32(state_shape)
        + b"\x85"
        + _dtype(code)
        + b"\x89"
        + raw
        + b"tb."
    )


def _object_npy(path, payload):
    with open(path, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "|O", "fortran_order": False, "shape": ()})
        f.write(payload)


def _bounded(fn, *args):
    """Run fn, return (exception, peak traced bytes, seconds)."""
    tracemalloc.start()
    t = time.perf_counter()
    try:
        fn(*args)
    except Exception as e:  # noqa: BLE001
        exc = e
    else:
        exc = None
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return exc, peak, time.perf_counter() - t


def test_crafted_pickle_helper_builds_a_real_array():
    four = b"C\x04" + np.float32(2.5).tobytes()
    arr = restricted_loads(_array_pickle(0, 1, b"f4", four))
    assert type(arr) is np.ndarray and arr.dtype == np.float32 and arr.tolist() == [2.5]


def test_npy_header_declaring_huge_shape_is_refused_before_allocating(tmp_path):
    p = tmp_path / "label.npy"
    with open(p, "wb") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (10**9,)})
        f.write(b"\0" * 16)
    assert p.stat().st_size < 200
    exc, peak, secs = _bounded(load_npy_restricted, p)
    assert isinstance(exc, BadInputError) and str(p) in str(exc)
    assert "4000000000 bytes" in str(exc) and "only 16 bytes" in str(exc)
    assert peak < 50e6 and secs < 5


@pytest.mark.parametrize(
    "payload, match",
    [
        # numpy's own check would come after nothing was allocated, but ours names the sizes
        (_array_pickle(0, 10**9, b"f4", b"C\x04\x00\x00\x00\x00"), "needs 4000000000 bytes but carries 4"),
        # an object array whose list is shorter than its shape made numpy segfault
        (_array_pickle(0, 10**9, b"O", b"]K\x01a"), "carries 1 items"),
        (_array_pickle(0, 3, b"O", b"]K\x01a"), "carries 1 items"),
        # _reconstruct itself allocates the shape it is given (numpy always passes (0,))
        (_array_pickle(10**9, 1, b"O", b"]K\x01a"), "1000000000-byte array"),
        # a 'U500000000' scalar is 2 GB of zeros
        (b"\x80\x02c" + _MA + b"\nscalar\n" + _dtype(b"U500000000") + b"\x85R.", "2000000000-byte scalar"),
    ],
    ids=["setstate_bytes_short", "setstate_objects_short_huge", "setstate_objects_short", "reconstruct_huge", "scalar_huge"],
)
def test_crafted_label_npy_declaring_huge_arrays_is_refused(tmp_path, payload, match):
    p = tmp_path / "label.npy"
    _object_npy(p, payload)
    exc, peak, secs = _bounded(load_label_npy, p)
    assert isinstance(exc, BadInputError), exc
    assert match in str(exc) and "declares more data than it holds" in str(exc) and str(p) in str(exc)
    assert peak < 50e6 and secs < 5


def test_direct_ndarray_call_is_unsafe(tmp_path):
    p = tmp_path / "label.npy"
    _object_npy(p, b"\x80\x02cnumpy\nndarray\n" + _i32(10**9) + b"\x85" + _dtype(b"O") + b"\x86R.")
    exc, peak, _ = _bounded(load_label_npy, p)
    assert isinstance(exc, UnsafePickleError) and "numpy.ndarray directly" in str(exc) and str(p) in str(exc)
    assert peak < 50e6


def test_unpickled_arrays_are_plain_ndarrays_at_any_depth():
    inner = np.arange(4).reshape(2, 2).T
    obj = np.empty(2, dtype=object)
    obj[0] = inner
    obj[1] = [np.ones(2), {"x": np.zeros(3, np.int16)}]
    out = restricted_loads(pickle.dumps({"a": obj, "b": [inner]}, protocol=3))
    arrays = [out["a"], out["a"][0], out["a"][1][0], out["a"][1][1]["x"], out["b"][0]]
    assert all(type(a) is np.ndarray for a in arrays)
    np.testing.assert_array_equal(out["a"][0], inner)
    np.testing.assert_array_equal(out["b"][0], inner)
    assert out["a"][1][1]["x"].dtype == np.int16
