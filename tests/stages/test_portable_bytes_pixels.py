"""One input, one answer on every CPU, for the simulators that see only pixels: ingest → segment
with ``detect.backend: pixels`` and ``segment.mode: pixels`` run natively and as "another
machine" (the kernel switches of tests/stages/test_portable_bytes.py), and every cached zip
must come out byte for byte the same (the few-shot classifier's fit included: it decides
every label, score and feature)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.stages.test_portable_bytes import NATIVE, OTHER_CPU, _partstad

CHAIN = ("ingest", "render", "detect", "segment")


def _run(root: Path, params: Path, env: dict[str, str]) -> dict[str, bytes]:
    root.mkdir()
    for stage in CHAIN:
        _partstad([stage, "--params", str(params), "--cache", "cache"], root, env)
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.glob("cache/**/*.zip"))}


def test_pixels_detect_and_segment_are_byte_identical_under_other_kernels(tmp_path, write_params):
    params = write_params(
        tmp_path,
        ["Kettle"],
        data={"n_points": 4000, "n_fewshot": 2, "n_val": 1, "n_test": 1},
        render={"image_size": 96},
        detect={"backend": "pixels", "pixels": {"steps": 60, "hidden": 128}},
        segment={"mode": "pixels"},
    )
    with ThreadPoolExecutor(2) as pool:
        a = pool.submit(_run, tmp_path / "native", params, NATIVE)
        b = pool.submit(_run, tmp_path / "other", params, OTHER_CPU)
        native, other = a.result(), b.result()
    assert {k.split("/")[1] for k in native} == set(CHAIN)
    assert len(native) == 4 * len(CHAIN)
    assert sorted(other) == sorted(native)
    differing = [k for k in native if native[k] != other[k]]
    assert differing == [], f"{len(differing)} of {len(native)} zips differ: {differing}"
