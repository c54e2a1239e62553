"""stages.train_io.ReadOnce: the mask and box variants and the masks-only fit of a category share
each object's reads, and the objects they build are the ones built without sharing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from stages.stage_table import chain


@pytest.fixture(scope="module")
def lifted_cache(tmp_path_factory, write_params, run) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("reads")
    params = write_params(base, ["Kettle"], data={"n_points": 3000, "n_fewshot": 2, "n_val": 1, "n_test": 1}, render={"image_size": 96})
    for stage in chain("lift"):
        run([stage, "--params", str(params), "--cache", str(base / "cache")])
    return params, base / "cache"


def _same(a, b) -> bool:
    return (
        torch.equal(a.x, b.x)
        and torch.equal(a.n_s, b.n_s)
        and torch.equal(a.valid, b.valid)
        and (a.gt is None) == (b.gt is None)
        and (a.gt is None or torch.equal(a.gt, b.gt))
        and np.array_equal(a.label_counts, b.label_counts)
        and all(torch.equal(getattr(a.index, f), getattr(b.index, f)) for f in ("single_box", "multi_box", "multi_group", "inv_vis"))
    )


def test_shared_reads_build_the_same_objects_and_read_each_input_once(lifted_cache):
    from pipeline.meta import register_part_names
    from stages.common import load_params, make_context, select_objects
    from stages.train import load_split
    from stages.train_io import ReadOnce, prepare_object

    params, cache = lifted_cache
    cfg = load_params(str(params))
    register_part_names(cfg.data.part_names)
    ctx = make_context("train", "Kettle", str(cache), cfg, "cpu")
    ids = select_objects(str(cache), "Kettle", None, ("fewshot", "val"))
    assert len(ids) == 3
    reads, skipped = ReadOnce(), []
    shared = {mode: load_split(ctx, ids, mode, True, "cpu", skipped, reads) for mode in ("mask", "box")}
    assert skipped == [] and set(reads.side) == set(ids)
    assert set(reads.lifted) == {(i, m) for i in ids for m in ("mask", "box")}
    for mode, objs in shared.items():
        for oid, obj in zip(ids, objs):
            assert obj.object_id == oid and _same(obj, prepare_object(ctx, oid, mode, True))
    first = reads.lifting(ctx, ids[0], "mask")
    assert reads.lifting(ctx, ids[0], "mask") is first  # the masks-only fit reuses it
