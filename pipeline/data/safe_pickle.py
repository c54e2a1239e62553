"""Load the pickled `.npy` files of PartNetE/PartSTAD without trusting them.

`label.npy` (PartNetE) and `superpoint.npy` (PartSTAD) are `np.save` of object arrays, i.e. a
`.npy` header followed by a pickle. `np.load(allow_pickle=True)` would execute whatever the
pickle names, so we parse the header with `numpy.lib.format` and unpickle the payload with a
restricted unpickler that resolves only the globals numpy needs to rebuild plain arrays
(DESIGN §3: never `allow_pickle=True` on untrusted files).
"""
from __future__ import annotations

import codecs
import io
import pickle
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import numpy.lib.format as npformat

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


#: (module, name) -> object. Only what rebuilding ndarrays, dtypes and numpy scalars needs,
#: under both the numpy 1 (`numpy.core`) and numpy 2 (`numpy._core`) module names.
_ALLOWED: dict[tuple[str, str], Any] = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("builtins", "dict"): dict,
    ("builtins", "list"): list,
    ("_codecs", "encode"): _latin1_encode,
}
for _mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
    _ALLOWED[(_mod, "_reconstruct")] = _multiarray._reconstruct
    _ALLOWED[(_mod, "scalar")] = _multiarray.scalar


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler whose `find_class` admits only the `_ALLOWED` globals."""

    def __init__(self, file: BinaryIO, *, path: str | Path | None = None):
        super().__init__(file)
        self._path = path

    def find_class(self, module: str, name: str) -> Any:  # noqa: D102 - see class doc
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"pickle refers to forbidden global {module}.{name}", path=self._path
            ) from None

    def persistent_load(self, pid: Any) -> Any:  # noqa: D102
        raise UnsafePickleError("pickle uses persistent ids (not allowed)", path=self._path)


def restricted_loads(data: bytes, *, path: str | Path | None = None) -> Any:
    """Unpickle bytes with `RestrictedUnpickler`; malformed data -> BadInputError."""
    try:
        return RestrictedUnpickler(io.BytesIO(data), path=path).load()
    except UnsafePickleError:
        raise
    except Exception as e:  # noqa: BLE001 - any decoding error is a bad file
        raise BadInputError(f"corrupt pickle payload ({type(e).__name__}: {e})", path=path) from None


def load_npy_restricted(path: str | Path) -> np.ndarray:
    """Read a `.npy` file; object arrays are unpickled with the restricted unpickler."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            try:
                version = npformat.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = npformat.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, fortran, dtype = npformat.read_array_header_2_0(f)
                else:  # (3, 0): utf-8 header; numpy exposes no public reader for it
                    shape, fortran, dtype = npformat._read_array_header(f, version)  # noqa: SLF001
            except (ValueError, EOFError, SyntaxError) as e:
                raise BadInputError(f"not a valid .npy file ({e})", path=path) from None
            if dtype.hasobject:
                arr = restricted_loads(f.read(), path=path)
                if not isinstance(arr, np.ndarray):
                    raise BadInputError(f".npy payload is a {type(arr).__name__}, not an array", path=path)
                return arr
            f.seek(0)
            try:
                return np.load(f, allow_pickle=False)
            except (ValueError, EOFError, OSError) as e:
                raise BadInputError(f"corrupt .npy data ({e})", path=path) from None
    except OSError as e:
        raise BadInputError(f"cannot read file: {e.strerror or e}", path=path) from None


def _int_array(value: Any, key: str, path: Path) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == object or arr.ndim != 1 or not (
        np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.bool_)
        or (np.issubdtype(arr.dtype, np.floating) and np.all(np.mod(arr, 1) == 0))
    ):
        raise BadInputError(f"label.npy[{key!r}] must be a 1-D integer array, got "
                            f"{arr.dtype} shape {arr.shape}", path=path)
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
        raise BadInputError(f"label.npy semantic_seg has {sem.shape[0]} entries but instance_seg "
                            f"has {ins.shape[0]}", path=path)
    if sem.size and (sem.min() < -1 or sem.max() > np.iinfo(np.int16).max):
        raise BadInputError(f"label.npy semantic_seg values out of range ({sem.min()}..{sem.max()})", path=path)
    if ins.size and (ins.min() < -1 or ins.max() > np.iinfo(np.int32).max):
        raise BadInputError(f"label.npy instance_seg values out of range ({ins.min()}..{ins.max()})", path=path)
    return {"semantic_seg": sem.astype(np.int16), "instance_seg": ins.astype(np.int32)}


def _as_int_list(item: Any, i: int, path: Path) -> np.ndarray:
    if isinstance(item, np.ndarray) and item.ndim == 1 and np.issubdtype(item.dtype, np.integer):
        return item.astype(np.int64)
    if not isinstance(item, list) or not all(
        isinstance(x, (int, np.integer)) and not isinstance(x, bool) for x in item
    ):
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
        raise BadInputError(f"superpoint.npy must be an object array of int lists or a 2-D int "
                            f"array, got {arr.dtype} shape {arr.shape}", path=path)
    groups = [g for g in groups if g.size]
    if not groups:
        raise BadInputError("superpoint.npy holds no points", path=path)
    idx = np.concatenate(groups)
    sid = np.repeat(np.arange(len(groups), dtype=np.int32), [g.size for g in groups])
    n = int(idx.max()) + 1 if n_points is None else int(n_points)
    if idx.min() < 0 or idx.max() >= n:
        raise BadInputError(f"superpoint point indices out of range 0..{n - 1} "
                            f"({int(idx.min())}..{int(idx.max())})", path=path)
    counts = np.bincount(idx, minlength=n)
    if (counts > 1).any():
        raise BadInputError(f"{int((counts > 1).sum())} points belong to more than one superpoint", path=path)
    if (counts == 0).any():
        raise BadInputError(f"{int((counts == 0).sum())} of {n} points belong to no superpoint", path=path)
    sp = np.empty(n, np.int32)
    sp[idx] = sid
    return sp, n
