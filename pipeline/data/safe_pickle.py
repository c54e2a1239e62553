"""Load the pickled `.npy` files of PartNetE/PartSTAD without trusting them.

`label.npy` (PartNetE) and `superpoint.npy` (PartSTAD) are `np.save` of object arrays, i.e. a
`.npy` header followed by a pickle. `np.load(allow_pickle=True)` would execute whatever the
pickle names, so we parse the header with `numpy.lib.format` and unpickle the payload with a
restricted unpickler that resolves only the globals numpy needs to rebuild plain arrays
(DESIGN §3: never `allow_pickle=True` on untrusted files).

Sizes are bounded before anything is allocated: a few hundred bytes can declare a shape of
terabytes (and numpy segfaults on an object array whose pickled list is shorter than its
shape), so every declared shape is checked against the bytes the file actually carries.
"""

from __future__ import annotations

import codecs
import io
import math
import os
import pickle
from pathlib import Path
from typing import Any, BinaryIO, cast

import numpy as np
import numpy.lib.format as npformat

from pipeline.data.input_file import open_regular
from pipeline.errors import BadInputError, UnsafePickleError

try:  # numpy >= 2
    from numpy._core import multiarray as _multiarray
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray as _multiarray  # type: ignore[no-redef]


def _latin1_encode(obj: Any, encoding: str = "utf-8", errors: str = "strict") -> bytes:
    """Stand-in for `_codecs.encode`, which protocol-2 pickles use to carry raw bytes.

    Only the latin-1 text->bytes direction is allowed, so the real codec registry (which can
    reach compression and other transforms) is never exposed to the file.
    """
    if not isinstance(obj, str) or codecs.lookup(encoding).name not in ("latin-1", "iso8859-1"):
        raise pickle.UnpicklingError(f"_codecs.encode({type(obj).__name__}, {encoding!r}) is not allowed")
    return obj.encode("latin-1", errors)


class _SizeError(Exception):
    """A pickle declared more data than it carries; restricted_loads names the file."""


def _count(shape: Any) -> int:
    """Number of elements of a declared shape (exact Python ints: no overflow)."""
    if isinstance(shape, (int, np.integer)) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, tuple) or not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 0 for n in shape):
        raise _SizeError(f"array shape {shape!r} is not a tuple of non-negative ints")
    return math.prod(int(n) for n in shape)


def _nbytes(shape: Any, dtype: Any) -> int:
    """Bytes an array of `shape` and `dtype` would allocate."""
    try:
        itemsize = np.dtype(dtype).itemsize
    except (TypeError, ValueError) as e:
        raise _SizeError(f"bad array dtype {dtype!r} ({e})") from None
    return _count(shape) * itemsize


class _CheckedArray(np.ndarray):
    """What the unpickler hands out for `numpy.ndarray`: its `__setstate__` checks that the
    declared shape matches the data carried before numpy allocates. Callers never see it
    (`_plain_arrays` turns every instance back into a plain ndarray)."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _CheckedArray:
        # numpy pickles go through _reconstruct; a direct call could allocate any size.
        raise UnsafePickleError("pickle calls numpy.ndarray directly (not allowed)")

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise _SizeError(f"array state is a {type(state).__name__}, not numpy's 4/5-tuple")
        shape, dtype, raw = state[-4], state[-3], state[-1]
        if not isinstance(dtype, np.dtype):
            raise _SizeError(f"array state dtype is a {type(dtype).__name__}")
        count = _count(shape)
        if dtype.hasobject:
            if not isinstance(raw, list) or len(raw) != count:
                got = f"{len(raw)} items" if isinstance(raw, list) else f"a {type(raw).__name__}"
                raise _SizeError(f"object array of shape {shape} carries {got}")
        elif isinstance(raw, (bytes, bytearray, str)) and len(raw) != count * dtype.itemsize:
            raise _SizeError(f"array of shape {shape} {dtype} needs {count * dtype.itemsize} bytes but carries {len(raw)}")
        super().__setstate__(state)


def _guarded_reconstruct(subtype: Any, shape: Any, dtype: Any, *, max_bytes: float) -> np.ndarray:
    """`_reconstruct` bounded by the pickle's own size (numpy itself always passes shape (0,))."""
    if subtype is not _CheckedArray:
        raise UnsafePickleError(f"_reconstruct of {getattr(subtype, '__name__', subtype)!r} (only numpy.ndarray is allowed)")
    need = _nbytes(shape, dtype)
    if need > max_bytes:
        raise _SizeError(f"pickle declares a {need}-byte array in a {max_bytes}-byte payload")
    # subtype is _CheckedArray (checked above), so the result is an ndarray; numpy types it `object`
    return cast(np.ndarray, _multiarray._reconstruct(subtype, shape, dtype))


def _guarded_scalar(dtype: Any, *args: Any, max_bytes: float) -> Any:
    """`multiarray.scalar` bounded by the pickle's size (a 'U500000000' scalar is 2 GB)."""
    need = _nbytes((), dtype)
    if need > max_bytes:
        raise _SizeError(f"pickle declares a {need}-byte scalar in a {max_bytes}-byte payload")
    return _multiarray.scalar(dtype, *args)


#: (module, name) -> object. Only what rebuilding ndarrays, dtypes and numpy scalars needs,
#: under both the numpy 1 (`numpy.core`) and numpy 2 (`numpy._core`) module names.
#: `_reconstruct` and `scalar` are size-guarded per payload in `find_class`.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): _CheckedArray,
    ("numpy", "dtype"): np.dtype,
    ("builtins", "dict"): dict,
    ("builtins", "list"): list,
    ("_codecs", "encode"): _latin1_encode,
}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_mod, "_reconstruct")] = _guarded_reconstruct
    _ALLOWED[(_mod, "scalar")] = _guarded_scalar
_SIZE_GUARDED = (_guarded_reconstruct, _guarded_scalar)


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler whose `find_class` admits only the `_ALLOWED` globals.

    `max_bytes` caps any single array or scalar the pickle asks numpy to allocate up front
    (default: unbounded; `restricted_loads` passes the payload size).
    """

    def __init__(self, file: BinaryIO, *, path: str | Path | None = None, max_bytes: int | None = None):
        super().__init__(file)
        self._path = path
        self._max_bytes = max_bytes if max_bytes is not None else math.inf

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102 - see class doc
        try:
            obj = _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(f"pickle refers to forbidden global {module}.{name}", path=self._path) from None
        if obj in _SIZE_GUARDED:
            return _bind_max(obj, self._max_bytes)
        return obj

    def persistent_load(self, pid: Any) -> Any:  # noqa: D102
        raise UnsafePickleError("pickle uses persistent ids (not allowed)", path=self._path)


def _bind_max(fn: Any, max_bytes: float) -> Any:
    """`fn` with this payload's cap; a plain function, so the pickle cannot pass its own cap."""

    def guarded(*args: Any) -> Any:
        return fn(*args, max_bytes=max_bytes)

    return guarded


def _plain_arrays(root: Any) -> Any:
    """Turn every `_CheckedArray` in an unpickled graph (dicts, lists, object arrays) into a
    plain ndarray view. Iterative, with a seen-set: pickles can nest deeply or build cycles."""

    def plain(x: Any) -> Any:
        return x.view(np.ndarray) if isinstance(x, _CheckedArray) else x

    root = plain(root)
    stack, seen = [root], set()
    while stack:
        x = stack.pop()
        if id(x) in seen:
            continue
        seen.add(id(x))
        if isinstance(x, dict):
            slots: Any = list(x.items())
        elif isinstance(x, list):
            slots = list(enumerate(x))
        elif isinstance(x, np.ndarray) and x.dtype == object:
            x = x.reshape(-1) if x.flags.c_contiguous else x.flat  # writable views of x
            slots = list(enumerate(x))
        else:
            continue
        for k, v in slots:
            p = plain(v)
            if p is not v:
                x[k] = p
            if isinstance(p, (dict, list, np.ndarray)):
                stack.append(p)
    return root


def restricted_loads(data: bytes, *, path: str | Path | None = None, max_bytes: int | None = None) -> Any:
    """Unpickle bytes with `RestrictedUnpickler`; malformed data -> BadInputError.

    No array or scalar may declare more than `max_bytes` (default `len(data)`) up front, and
    an array's pickled contents must match its declared shape: the payload bounds memory.
    """
    return _load_stream(io.BytesIO(data), len(data) if max_bytes is None else max_bytes, path)


def _load_stream(stream: BinaryIO, cap: int, path: str | Path | None) -> Any:
    """`restricted_loads` on a stream, which is left just after the pickle's STOP opcode."""
    try:
        return _plain_arrays(RestrictedUnpickler(stream, path=path, max_bytes=cap).load())
    except UnsafePickleError as e:
        raise UnsafePickleError(e.reason, object_id=e.object_id, path=e.path or path) from None
    except _SizeError as e:
        raise BadInputError(f"pickle payload declares more data than it holds: {e}", path=path) from None
    except Exception as e:  # noqa: BLE001 - any decoding error is a bad file
        raise BadInputError(f"corrupt pickle payload ({type(e).__name__}: {e})", path=path) from None


def load_npy_restricted(path: str | Path) -> np.ndarray:
    """Read a `.npy` file; object arrays are unpickled with the restricted unpickler."""
    path = Path(path)
    try:
        with open_regular(path) as f:  # a FIFO, directory or symlink loop is an error, never a hang
            try:
                version = npformat.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = npformat.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, fortran, dtype = npformat.read_array_header_2_0(f)
                else:  # (3, 0): utf-8 header; numpy exposes no public reader for it
                    shape, fortran, dtype = npformat._read_array_header(f, version)  # type: ignore[attr-defined]  # noqa: SLF001 - private, not in numpy's stubs
            except (ValueError, EOFError, SyntaxError) as e:
                raise BadInputError(f"not a valid .npy file ({e})", path=path) from None
            if dtype.hasobject:
                return _load_object_payload(f.read(), shape, dtype, path)
            _check_npy_size(f, shape, dtype, path)
            f.seek(0)
            try:
                return np.load(f, allow_pickle=False)
            except (ValueError, EOFError, OSError) as e:
                raise BadInputError(f"corrupt .npy data ({e})", path=path) from None
    except OSError as e:
        raise BadInputError(f"cannot read file: {e.strerror or e}", path=path) from None


def _check_npy_size(f: BinaryIO, shape: tuple[int, ...], dtype: np.dtype, path: Path) -> None:
    """The header's shape must fit in the bytes after it: numpy allocates the declared size
    before reading, so a tiny file could otherwise claim gigabytes."""
    need = math.prod(shape) * dtype.itemsize
    have = os.fstat(f.fileno()).st_size - f.tell()
    if need > have:
        raise BadInputError(
            f".npy header declares shape {shape} {dtype} ({need} bytes) but the file holds only {have} bytes of data", path=path
        )
    if need < have:  # np.load would ignore them; a header that undercounts is as wrong
        raise BadInputError(
            f".npy header declares shape {shape} {dtype} ({need} bytes) but the file holds {have} bytes of data ({have - need} trailing)",
            path=path,
        )


def _load_object_payload(payload: bytes, shape: tuple[int, ...], dtype: np.dtype, path: Path) -> np.ndarray:
    """Unpickle an object array's payload and hold it to its `.npy` header: `np.load` returns
    whatever the pickle holds, so a header saying shape () over a pickled (5,) array, or bytes
    after the pickle, would otherwise pass unnoticed."""
    stream = io.BytesIO(payload)
    arr = _load_stream(stream, len(payload), path)
    if not isinstance(arr, np.ndarray):
        raise BadInputError(f".npy payload is a {type(arr).__name__}, not an array", path=path)
    if arr.shape != tuple(shape) or arr.dtype != dtype:
        raise BadInputError(
            f".npy header declares shape {tuple(shape)} {dtype} but the pickled payload is shape {arr.shape} {arr.dtype}", path=path
        )
    if (extra := len(payload) - stream.tell()) > 0:
        raise BadInputError(f".npy file has {extra} bytes after its pickled payload", path=path)
    return arr


def _int_array(value: Any, key: str, path: Path) -> np.ndarray:
    arr = np.asarray(value)
    if (
        arr.dtype == object
        or arr.ndim != 1
        or not (
            np.issubdtype(arr.dtype, np.integer)
            or np.issubdtype(arr.dtype, np.bool_)
            or (np.issubdtype(arr.dtype, np.floating) and np.all(np.mod(arr, 1) == 0))
        )
    ):
        raise BadInputError(f"label.npy[{key!r}] must be a 1-D integer array, got {arr.dtype} shape {arr.shape}", path=path)
    return arr.astype(np.int64)


def load_label_npy(path: str | Path) -> dict[str, np.ndarray]:
    """PartNetE `label.npy` -> {'semantic_seg': (N,) int16, 'instance_seg': (N,) int32}.

    The file is a 0-d object array wrapping a dict (SPEC §1.1). A missing `instance_seg`
    becomes all -1; a length mismatch between the two is a BadInputError.
    """
    path = Path(path)
    arr = load_npy_restricted(path)
    obj: Any = arr.item() if arr.dtype == object and arr.ndim == 0 else arr
    if not isinstance(obj, dict):
        raise BadInputError(f"label.npy should hold a dict, got {type(obj).__name__}", path=path)
    if "semantic_seg" not in obj:
        raise BadInputError(f"label.npy has no 'semantic_seg' (keys: {sorted(map(str, obj))})", path=path)
    sem = _int_array(obj["semantic_seg"], "semantic_seg", path)
    if "instance_seg" in obj and obj["instance_seg"] is not None:
        ins = _int_array(obj["instance_seg"], "instance_seg", path)
    else:
        ins = np.full(sem.shape, -1, np.int64)
    if ins.shape != sem.shape:
        raise BadInputError(f"label.npy semantic_seg has {sem.shape[0]} entries but instance_seg has {ins.shape[0]}", path=path)
    if sem.size and (sem.min() < -1 or sem.max() > np.iinfo(np.int16).max):
        raise BadInputError(f"label.npy semantic_seg values out of range ({sem.min()}..{sem.max()})", path=path)
    if ins.size and (ins.min() < -1 or ins.max() > np.iinfo(np.int32).max):
        raise BadInputError(f"label.npy instance_seg values out of range ({ins.min()}..{ins.max()})", path=path)
    return {"semantic_seg": sem.astype(np.int16), "instance_seg": ins.astype(np.int32)}


def _as_int_list(item: Any, i: int, path: Path) -> np.ndarray:
    if isinstance(item, np.ndarray) and item.ndim == 1 and np.issubdtype(item.dtype, np.integer):
        return item.astype(np.int64)
    if not isinstance(item, list) or not all(isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in item):
        raise BadInputError(f"superpoint {i} is a {type(item).__name__}, expected a list of ints", path=path)
    return np.asarray(item, dtype=np.int64).reshape(-1)


def load_superpoint_npy(path: str | Path, n_points: int | None = None) -> tuple[np.ndarray, int]:
    """PartSTAD `superpoint.npy` (S lists of point indices) -> (sp (N,) int32, N).

    Accepts the pickled 1-D object array of int lists, or the plain 2-D int array numpy makes
    when every list has the same length. The lists must partition 0..N-1 (N = `n_points` if
    given, else max index + 1). Empty superpoints are dropped so ids stay contiguous 0..S-1.
    """
    path = Path(path)
    arr = load_npy_restricted(path)
    if arr.dtype == object and arr.ndim == 1:
        groups = [_as_int_list(item, i, path) for i, item in enumerate(arr.tolist())]
    elif arr.dtype == object and arr.ndim == 2:  # equal-length lists saved with dtype=object
        groups = [_as_int_list(row, i, path) for i, row in enumerate(arr.tolist())]
    elif np.issubdtype(arr.dtype, np.integer) and arr.ndim == 2:
        groups = [row.astype(np.int64) for row in arr]
    elif np.issubdtype(arr.dtype, np.integer) and arr.ndim == 1 and arr.size == 0:
        groups = []
    else:
        raise BadInputError(
            f"superpoint.npy must be an object array of int lists or a 2-D int array, got {arr.dtype} shape {arr.shape}", path=path
        )
    groups = [g for g in groups if g.size]
    if not groups:
        raise BadInputError("superpoint.npy holds no points", path=path)
    idx = np.concatenate(groups)
    sid = np.repeat(np.arange(len(groups), dtype=np.int32), [g.size for g in groups])
    n = int(idx.max()) + 1 if n_points is None else int(n_points)
    if idx.min() < 0 or idx.max() >= n:
        raise BadInputError(f"superpoint point indices out of range 0..{n - 1} ({int(idx.min())}..{int(idx.max())})", path=path)
    counts = np.bincount(idx, minlength=n)
    if (counts > 1).any():
        raise BadInputError(f"{int((counts > 1).sum())} points belong to more than one superpoint", path=path)
    if (counts == 0).any():
        raise BadInputError(f"{int((counts == 0).sum())} of {n} points belong to no superpoint", path=path)
    sp = np.empty(n, np.int32)
    sp[idx] = sid
    return sp, n
