"""Cost of the bounded, verified reads (size caps, digest, chunk headers) on a demo-size object.

Side by side in one run, on the same zip: reading every array through CategoryStore (checks
on) vs through zarr's plain ZipStore (no checks, what the store did before), and the
self-check on skip (digest of every array, nothing decoded). Uses the demo cache's render
object cache/render/Chair.zarr/0000.zip when present (its arrays are rewritten into a
temporary store so they carry digests), otherwise a synthetic 10 x 512 x 512 render object.

    python benchmarks/bench_bounded_reads.py [stage] [repeats]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zarr

from stages.store import CategoryStore

REPO = Path(__file__).resolve().parent.parent


def _arrays(stage: str) -> dict[str, np.ndarray]:
    demo = REPO / "cache" / stage / "Chair.zarr" / "0000.zip"
    if demo.is_file():
        g = zarr.open_group(zarr.storage.ZipStore(demo, mode="r"), mode="r")
        return {k: np.asarray(a[...]) for k, a in g.arrays()}
    rng = np.random.default_rng(0)
    return {
        "rgb": rng.integers(0, 255, (10, 512, 512, 3), dtype=np.uint8),
        "pix2pt": rng.integers(-1, 20000, (10, 512, 512), dtype=np.int32),
        "depth": rng.random((10, 512, 512), dtype=np.float32),
    }


def _best(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main(stage: str = "render", repeats: int = 7) -> None:
    arrays = _arrays(stage)
    with tempfile.TemporaryDirectory() as tmp:
        st = CategoryStore(tmp, stage, "Chair")
        st.write_object("Chair/0000", arrays, {}, "fp")
        path = st.object_file("Chair/0000")
        names = sorted(arrays)

        def checked() -> None:
            fresh = CategoryStore(tmp, stage, "Chair")  # new handle: every check runs again
            for n in names:
                fresh.read("Chair/0000", n)

        def plain() -> None:
            g = zarr.open_group(zarr.storage.ZipStore(path, mode="r"), mode="r")
            for n in names:
                np.asarray(g[n][...])

        def verify() -> None:
            assert CategoryStore(tmp, stage, "Chair").verify_object("Chair/0000") is None

        plain()
        checked()
        t_plain, t_checked, t_verify = _best(plain, repeats), _best(checked, repeats), _best(verify, repeats)
    size = sum(a.nbytes for a in arrays.values())
    print(f"{stage} object: {len(names)} arrays, {size / 1e6:.1f} MB decoded; best of {repeats}")
    print(f"read all arrays, plain zarr ZipStore (no checks): {t_plain * 1e3:7.1f} ms")
    print(f"read all arrays, CategoryStore (bounded, digest): {t_checked * 1e3:7.1f} ms  ratio {t_checked / t_plain:.2f}")
    print(f"self-check on skip (verify_object, all digests):  {t_verify * 1e3:7.1f} ms")


if __name__ == "__main__":
    main(*(sys.argv[1:2] or ["render"]), *(int(x) for x in sys.argv[2:3]))
