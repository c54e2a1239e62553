import json

import numpy as np
import pytest
from PIL import Image

from pipeline.detect.imported import object_paths, read_partstad_preprocessed
from pipeline.errors import BadInputError, UnsafePickleError

CAT, OID = "Chair", "179"
V, H, W, N = 10, 64, 48, 60


def _write(save_dir, n_boxes=20, seed=0, shuffle=False):
    """A small object in the original PartSTAD layout; returns what was written."""
    rng = np.random.default_rng(seed)
    P = object_paths(save_dir, CAT, OID)
    for key in ("rendered_img", "pred", "mask"):
        (P[key] if key == "rendered_img" else P[key].parent).mkdir(parents=True, exist_ok=True)
    P["pc_idx"].parent.mkdir(parents=True, exist_ok=True)
    rgba = rng.integers(0, 256, size=(V, H, W, 4), dtype=np.uint8)
    for v in range(V):
        Image.fromarray(rgba[v], "RGBA").save(P["rendered_img"] / f"{v}.png")
    pc_idx = rng.integers(-1, N, size=(V, H, W)).astype(np.int64)
    np.save(P["pc_idx"], pc_idx)
    uv = rng.uniform(0, W, size=(V, N, 2)).astype(np.float32)
    np.save(P["screen_coords"], uv)
    perm = rng.permutation(N)
    groups = [perm[i : i + 7].tolist() for i in range(0, N, 7)]  # unequal last list -> object array
    sp_arr = np.empty(len(groups), dtype=object)
    sp_arr[:] = groups
    np.save(P["superpoint"], sp_arr, allow_pickle=True)
    # boxes: views 0, 2 and 5 only (zero boxes elsewhere); one box crosses the border
    views = np.sort(rng.choice([0, 2, 5], size=n_boxes))
    recs, scores = [], []
    for b in range(n_boxes):
        x, y = rng.uniform(0, W - 10), rng.uniform(0, H - 10)
        w, h = rng.uniform(2, 20), rng.uniform(2, 20)
        scores.append(rng.uniform(0.5, 1))
        recs.append(
            {
                "image_id": int(views[b]),
                "category_id": int(rng.integers(1, 6)),
                "bbox": [x, y, w, h],
                "score": 0.0,
                "pos": [1, 2],
                "level": 0,
            }
        )
    # order by view then descending score, as PartSTAD stores them
    scores = np.array(scores)
    order = np.lexsort((-scores, views))
    recs = [dict(recs[i], score=float(scores[i])) for i in order]
    if n_boxes:
        recs[0]["bbox"] = [W - 5.0, -3.0, 20.0, 10.0]
    feat = rng.standard_normal((n_boxes, 256)).astype(np.float32)
    masks = (rng.random((n_boxes, H, W)) < 0.3).astype(np.float64)
    if shuffle:
        p = rng.permutation(n_boxes)
        recs, feat, masks = [recs[i] for i in p], feat[p], masks[p]
    P["pred"].write_text(json.dumps(recs))
    if n_boxes:
        np.savez_compressed(P["feature"], feature=feat, fused_feature=feat * 2, logit=np.zeros((n_boxes, 5)), centerness=np.zeros(n_boxes))
        np.savez_compressed(P["mask"], mask=masks)
    return dict(rgb=rgba[..., :3], pc_idx=pc_idx, uv=uv, groups=groups, recs=recs, feat=feat, masks=masks)


def test_round_trip(tmp_path):
    ref = _write(tmp_path)
    obj = read_partstad_preprocessed(tmp_path, CAT, OID)
    np.testing.assert_array_equal(obj.rgb, ref["rgb"])
    assert obj.rgb.dtype == np.uint8 and obj.rgb.shape == (V, H, W, 3)
    assert obj.pix2pt.dtype == np.int32
    np.testing.assert_array_equal(obj.pix2pt, ref["pc_idx"])
    np.testing.assert_array_equal(obj.uv, ref["uv"])
    for s, g in enumerate(ref["groups"]):
        assert (obj.sp[g] == s).all()
    det = obj.detections
    assert len(det) == 20 and det.simulated is False
    for b, r in enumerate(ref["recs"]):
        x, y, w, h = r["bbox"]
        exp = np.clip([x, y, x + w, y + h], 0, [W, H, W, H])
        np.testing.assert_allclose(det.xyxy[b], exp, rtol=1e-6)
        assert det.view[b] == r["image_id"] and det.label[b] == r["category_id"] - 1
        assert det.score[b] == np.float32(r["score"])
    assert det.xyxy[0].tolist() == [W - 5, 0, W, 7]  # partly outside: clipped
    np.testing.assert_array_equal(det.feat, ref["feat"])
    assert obj.masks.dtype == bool and obj.masks.shape == (20, H, W)
    np.testing.assert_array_equal(obj.masks, ref["masks"] > 0.5)
    off = det.offsets(V)
    assert off[1] == off[2] and off[-1] == 20  # view 1 has zero boxes


def test_unsorted_store_is_reordered_consistently(tmp_path):
    ref = _write(tmp_path, shuffle=True, seed=3)
    obj = read_partstad_preprocessed(tmp_path, CAT, OID)
    det = obj.detections
    off = det.offsets(V)
    for v in range(V):
        assert np.all(np.diff(det.score[off[v] : off[v + 1]]) <= 0)
    # each box still has its own feature and mask
    for b in range(len(det)):
        i = int(np.flatnonzero(ref["feat"][:, 0] == det.feat[b, 0])[0])
        np.testing.assert_array_equal(obj.masks[b], ref["masks"][i] > 0.5)
        assert ref["recs"][i]["score"] == pytest.approx(float(det.score[b]), rel=1e-6)


def test_zero_boxes(tmp_path):
    _write(tmp_path, n_boxes=0)
    obj = read_partstad_preprocessed(tmp_path, CAT, OID)
    det = obj.detections
    assert det.xyxy.shape == (0, 4) and det.view.shape == (0,) and det.feat.shape == (0, 256)
    assert obj.masks.shape == (0, H, W) and obj.masks.dtype == bool
    assert det.offsets(V).tolist() == [0] * (V + 1)


@pytest.mark.parametrize(
    "breaker, needle",
    [
        (lambda P: P["pc_idx"].unlink(), "pc_idx.npy"),
        (lambda P: P["mask"].unlink(), "sam_mask.npz"),
        (lambda P: P["feature"].unlink(), "glip_feature.npz"),
        (lambda P: (P["rendered_img"] / "3.png").unlink(), "3.png"),
        (lambda P: P["mask"].write_bytes(b"not a zip"), "sam_mask.npz"),
        (lambda P: P["pred"].write_text("{oops"), "pred.json"),
        (
            lambda P: P["pred"].write_text(json.dumps([{"image_id": 0, "category_id": 9, "bbox": [0, 0, 1, 1], "score": 0.9}] * 20)),
            "category_id",
        ),
        (
            lambda P: P["pred"].write_text(json.dumps([{"image_id": 0, "category_id": 1, "bbox": [0, 0, 1, 1], "score": 0.9}] * 3)),
            "for 3 boxes",
        ),
        (lambda P: np.save(P["pc_idx"], np.full((V, H, W), N + 5)), "pc_idx"),
        (lambda P: np.savez_compressed(P["mask"], mask=np.zeros((20, H + 1, W))), "sam_mask.npz"),
        (lambda P: np.save(P["superpoint"], np.array([[0, 1], [1, 2]])), "superpoint.npy"),
        (lambda P: (P["rendered_img"] / "0.png").write_bytes(b"junk"), "0.png"),
    ],
)
def test_bad_inputs_name_object_and_file(tmp_path, breaker, needle):
    _write(tmp_path)
    breaker(object_paths(tmp_path, CAT, OID))
    with pytest.raises(BadInputError) as e:
        read_partstad_preprocessed(tmp_path, CAT, OID)
    assert f"{CAT}/{OID}" in str(e.value) and needle in str(e.value)


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_superpoint_pickle_is_restricted(tmp_path):
    _write(tmp_path)
    P = object_paths(tmp_path, CAT, OID)
    arr = np.empty(2, dtype=object)
    arr[:] = [[0, 1], _Evil()]
    with open(P["superpoint"], "wb") as f:  # an .npy whose pickle calls print()
        np.lib.format.write_array(f, arr, allow_pickle=True)
    with pytest.raises(UnsafePickleError) as e:
        read_partstad_preprocessed(tmp_path, CAT, OID)
    assert "superpoint.npy" in str(e.value) and f"{CAT}/{OID}" in str(e.value)
