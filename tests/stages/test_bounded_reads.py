"""Bounded, verified reads of cached objects (issue 21): inflated metadata, chunk bombs,
declared sizes over the limit, arrays of another object, upstream results that disagree."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from pipeline.errors import BadInputError
from stages.keys import KeyResolver
from stages.runner import StageContext, run_stage
from stages.store import CategoryStore
from tests.object_zip import forge_metadata, read_members, write_members
from tests.trusted_keys import trusted

A, B = "Chair/0001", "Chair/0002"


def _arrays(seed: int, hw: int = 8) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {"mask": rng.random((2, hw, hw)) > 0.5, "score": rng.random(2).astype(np.float32)}


def _store(root: Path, stage: str = "segment") -> CategoryStore:
    return CategoryStore(root, stage, "Chair")


def _written(root: Path) -> CategoryStore:
    st = _store(root)
    st.write_object(A, _arrays(1), {}, "fpA")
    st.write_object(B, _arrays(2), {}, "fpB")
    return st


def _lie_about_size(zip_path: Path, member: str, size: int) -> None:
    """Patch the uncompressed size of ``member`` in its local and central headers."""
    data = bytearray(zip_path.read_bytes())
    name = member.encode()
    for sig, field, name_at in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        at = data.find(sig)
        while at >= 0:
            if data[at + name_at : at + name_at + len(name)] == name:
                struct.pack_into("<I", data, at + field, size)
            at = data.find(sig, at + 4)
    zip_path.write_bytes(bytes(data))


def test_written_objects_record_digests_and_counts(tmp_path):
    st = _written(tmp_path)
    attrs = st.attrs(A)
    assert set(attrs["array_digests"]) == {"mask", "score"} and attrs["counts"] == {"boxes": 2}
    assert attrs["array_digests"] != st.attrs(B)["array_digests"]
    assert st.verify_object(A) is None
    np.testing.assert_array_equal(st.read(A, "mask"), _arrays(1)["mask"])


def test_group_metadata_over_the_cap_is_refused_before_reading(tmp_path):
    st = _written(tmp_path)
    z = st.object_file(A)
    entries = read_members(z)
    entries["zarr.json"] += b" " * (1 << 20)  # still valid JSON, 1 MiB of it
    write_members(z, entries)
    assert not st.is_complete(A) and st.stored_fingerprint(A) is None
    assert "over the limit" in st.verify_object(A)
    with pytest.raises(BadInputError, match=r"object Chair/0001.*0001\.zip/zarr\.json.*over the limit"):
        st.read(A, "mask")
    assert st.read(B, "score").shape == (2,)  # the other object goes on


def test_compressed_metadata_bomb_with_a_lying_header_is_never_inflated(tmp_path):
    st = _written(tmp_path)
    z = st.object_file(A)
    entries = read_members(z)
    small = len(entries["zarr.json"])
    entries["zarr.json"] += b" " * (64 << 20)  # inflates to 64 MiB
    write_members(z, entries, compress={"zarr.json"})
    _lie_about_size(z, "zarr.json", small)  # ... while its headers say a few hundred bytes
    assert z.stat().st_size < 200_000
    assert "is compressed" in st.verify_object(A)
    with pytest.raises(BadInputError, match=r"0001\.zip/zarr\.json.*is compressed"):
        st.read(A, "mask")
    assert not st.is_complete(A)


def test_array_metadata_over_the_cap_is_refused(tmp_path):
    st = _written(tmp_path)
    z = st.object_file(A)
    entries = read_members(z)
    entries["mask/zarr.json"] += b"\n" * (2 << 20)
    write_members(z, entries)
    forge_metadata(z)
    with pytest.raises(BadInputError, match=r"0001\.zip/mask.*over the limit"):
        st.read(A, "mask")
    np.testing.assert_array_equal(st.read(A, "score"), _arrays(1)["score"])  # its other array is fine


def test_chunk_bomb_with_a_forged_digest_is_refused_before_decoding(tmp_path):
    st = _written(tmp_path)
    st.write_object("Chair/big", {"mask": np.zeros((2, 1024, 1024), bool)}, {}, "fp")
    (big_shard,) = [v for k, v in read_members(st.object_file("Chair/big")).items() if k.startswith("mask/c/")]
    z = st.object_file(A)
    entries = read_members(z)
    (member,) = [k for k in entries if k.startswith("mask/c/")]
    entries[member] = big_shard  # valid CRCs, each chunk decodes to 1 MiB where 64 bytes belong
    write_members(z, entries)
    with pytest.raises(BadInputError, match="do not match the digest"):
        st.read(A, "mask")
    forge_metadata(z)
    st = _store(tmp_path)
    with pytest.raises(BadInputError, match=r"0001\.zip/mask.*declares 1048576 decoded bytes, its array's chunk holds 64"):
        st.read(A, "mask")
    assert "declares 1048576 decoded bytes" in st.verify_object(A)


def test_declared_shape_over_the_per_object_limit_is_refused(tmp_path):
    st = _written(tmp_path)
    z = st.object_file(A)
    entries = read_members(z)
    meta = json.loads(entries["mask/zarr.json"])
    meta["shape"] = [2, 1 << 20, 1 << 20]  # 2 TiB of bool
    entries["mask/zarr.json"] = json.dumps(meta).encode()
    write_members(z, entries)

    def grow(attrs: dict) -> None:
        attrs["stored_arrays"]["mask"] = meta["shape"]
        attrs["counts"] = {"boxes": 2}

    forge_metadata(z, grow)
    with pytest.raises(BadInputError, match=r"0001\.zip/mask.*declares 2199023255552 decoded bytes, over the per-object limit"):
        st.read(A, "mask")


def test_arrays_of_another_object_fail_on_read_and_the_own_result_is_recomputed(tmp_path):
    ctx = StageContext("segment", "Chair", str(tmp_path), {"segment": {}})
    work = lambda ctx, oid: (_arrays(int(oid[-1])), {})  # noqa: E731 - the object's own arrays
    assert run_stage(ctx, [A, B], work, keys=trusted(ctx)).done == [A, B]
    st = _store(tmp_path)
    z, zb = st.object_file(A), st.object_file(B)
    entries, other = read_members(z), read_members(zb)
    entries.update({k: v for k, v in other.items() if k.startswith("mask/")})  # A's metadata, B's mask
    write_members(z, entries)
    with pytest.raises(BadInputError, match=r"object Chair/0001.*0001\.zip/mask.*corrupt array 'mask'.*digest"):
        st.read(A, "mask")
    assert st.is_complete(A)  # its metadata alone looks fine...
    rep = run_stage(ctx, [A, B], work, keys=trusted(ctx))  # ... the self-check on skip is not fooled
    assert rep.repaired == [A] and rep.done == [A] and rep.skipped == [B] and not rep.failed
    np.testing.assert_array_equal(_store(tmp_path).read(A, "mask"), _arrays(1)["mask"])


def test_the_zip_of_another_object_is_refused(tmp_path):
    st = _written(tmp_path)
    st.object_file(A).write_bytes(st.object_file(B).read_bytes())
    with pytest.raises(BadInputError, match=r"object Chair/0001.*holds the result of object 'Chair/0002'"):
        st.read(A, "score")
    assert "holds the result of object 'Chair/0002'" in st.verify_object(A)


def test_an_upstream_result_whose_counts_disagree_fails_the_object(tmp_path):
    store = lambda stage: CategoryStore(tmp_path, stage, "Chair")  # noqa: E731
    store("ingest").write_object(A, {"xyz": np.zeros((5, 3), np.float32)}, {}, "ing")
    resolver = KeyResolver(lambda stage: {}, store)
    key = resolver.key("superpoints", A)
    sp = store("superpoints")
    sp.write_object(A, {"sp": np.zeros(5, np.int32)}, {"upstream_keys": {"ingest": "ing"}}, key)
    assert KeyResolver(lambda stage: {}, store).current("superpoints", A) == key
    # same key and upstream keys, but the arrays of an object with 7 points
    sp.write_object(A, {"sp": np.zeros(7, np.int32)}, {"upstream_keys": {"ingest": "ing"}}, key)
    with pytest.raises(BadInputError, match=r"object Chair/0001.*superpoints result has 7 points but the ingest result has 5"):
        KeyResolver(lambda stage: {}, store).current("superpoints", A)


def test_an_older_object_without_digests_is_recomputed_not_trusted(tmp_path):
    st = _written(tmp_path)
    forge_metadata(st.object_file(A), lambda attrs: attrs.pop("array_digests"), digests=False)
    assert "no record of its arrays or of their digests" in st.verify_object(A)
    with pytest.raises(BadInputError, match="written by an older partstad"):
        st.read(A, "mask")
