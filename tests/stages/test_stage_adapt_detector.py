"""`partstad adapt-detector` through the CLI: skip mode, bad params, no shapes, and the adapted
weights flowing through `partstad detect` (same arrays and dtypes, new cache key)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import transformers  # noqa: F401

from stages.config import load_config
from stages.detector_weights import dir_digest
from stages.store import CategoryStore
from tests.tiny_gdino import save_tiny_gdino

CAT = "Kettle"
PARTS = ["lid", "handle", "spout"]
VIEWS = [[10, 0], [10, 120], [40, 240]]


def _params(write_params, tmp: Path, **over):
    base = {
        "adapt": {"out_dir": str(tmp / "models" / "adapt"), "epochs": 1, "batch_size": 2, "lr": 1e-3, "trainable": "all"},
        "render": {"image_size": 96, "views": VIEWS},
    }
    for k, v in over.items():
        base[k] = {**base.get(k, {}), **v}
    return write_params(tmp, [CAT], **base)


def test_disabled_writes_a_skip_marker_quickly(tmp_path, write_params, run):
    p = _params(write_params, tmp_path)
    res = run(["adapt-detector", "--params", p, "--cache", tmp_path / "cache", "--metrics", tmp_path / "metrics"])
    assert "skipped (adapt.enabled is false (detect.backend is oracle))" in res.output
    m = json.loads((tmp_path / "metrics" / "adapt" / f"{CAT}.json").read_text())
    assert m["skipped"] is True and m["config"]["enabled"] is False
    d = tmp_path / "models" / "adapt" / CAT
    assert sorted(x.name for x in d.iterdir()) == ["SKIPPED.json"]
    assert not (tmp_path / "cache").exists()  # the skip reads nothing


def test_bad_params_exit_2_before_anything(tmp_path, write_params, invoke):
    p = _params(write_params, tmp_path, adapt={"enabled": True})
    res = invoke(["adapt-detector", "--params", p, "--cache", tmp_path / "cache", "--metrics", tmp_path / "metrics"])
    assert res.exit_code == 2 and "needs detect.backend: grounding_dino" in res.output
    broken = save_tiny_gdino(tmp_path / "base", PARTS, image_size=96)
    (broken / "model.safetensors").unlink()
    p = _params(write_params, tmp_path, adapt={"enabled": True}, detect={"backend": "grounding_dino", "weights_dir": str(broken)})
    res = invoke(["adapt-detector", "--params", p, "--cache", tmp_path / "cache", "--metrics", tmp_path / "metrics"])
    assert res.exit_code == 2 and "detect.weights_dir" in res.output and "no model.safetensors" in res.output and str(broken) in res.output
    p = _params(write_params, tmp_path, adapt={"enabled": True, "epochs": -1})
    res = invoke(["adapt-detector", "--params", p])
    assert res.exit_code == 2 and "adapt.epochs" in res.output
    assert not (tmp_path / "models").exists() and not (tmp_path / "metrics").exists()


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """A cache with 2 few-shot + 1 val Kettle shapes rendered at 96 px (3 views), and tiny weights."""
    from tests.stages.conftest import run, write_params

    tmp = tmp_path_factory.mktemp("adapt_stage")
    weights = save_tiny_gdino(tmp / "base", PARTS, image_size=96)
    p = _params(
        write_params,
        tmp,
        data={"n_fewshot": 2, "n_val": 1, "n_test": 1, "n_points": 2000},
        detect={"backend": "grounding_dino", "weights_dir": str(weights), "score_threshold": 0.0, "max_per_view": 10},
    )
    run(["ingest", "--params", p, "--cache", tmp / "cache"])
    run(["render", "--params", p, "--cache", tmp / "cache"])
    return tmp, p, weights


def test_no_fewshot_shapes_exit_1(tmp_path, write_params, invoke, rendered):
    _, _, weights = rendered
    p = _params(write_params, tmp_path, adapt={"enabled": True}, detect={"backend": "grounding_dino", "weights_dir": str(weights)})
    res = invoke(["adapt-detector", "--params", p, "--cache", tmp_path / "empty_cache", "--metrics", tmp_path / "metrics"])
    assert res.exit_code == 1 and f"{CAT}: no usable few-shot shapes" in res.output
    assert not (tmp_path / "models" / "adapt" / CAT).exists()


def test_adapted_weights_flow_through_detect(rendered, run, write_params):
    tmp, p, weights = rendered
    cache = tmp / "cache"
    run(["detect", "--params", p, "--cache", cache])  # adapt disabled: base weights
    det = CategoryStore(cache, "detect", CAT)
    oid = det.object_ids()[0]
    base_arrays = det.read_all(oid)
    base_fp = det.stored_fingerprint(oid)
    assert det.attrs(oid)["adapted_weights"] is False
    assert det.attrs(oid)["weights"] == {"spec": str(weights), "digest": dir_digest(weights)}  # provenance of the boxes

    on = Path(p).with_name("params_on.yaml")
    cfg = load_config(p).model_dump(mode="json")
    cfg["adapt"]["enabled"] = True
    on.write_text(__import__("yaml").safe_dump(cfg))
    res = run(["adapt-detector", "--params", on, "--cache", cache, "--metrics", tmp / "metrics", "--device", "cpu"])
    assert "AP50" in res.output
    out = tmp / "models" / "adapt" / CAT
    assert {"config.json", "model.safetensors", "adapt.json", "tokenizer_config.json", "processor_config.json"} <= {
        x.name for x in out.iterdir()
    }
    rec = json.loads((out / "adapt.json").read_text())
    assert (
        rec["adapt_config"]["enabled"] is True
        and rec["part_names"] == PARTS
        and rec["base_weights_dir"] == str(weights)
        and rec["base_weights_spec"] == str(weights)
    )
    m = json.loads((tmp / "metrics" / "adapt" / f"{CAT}.json").read_text())
    assert len(m["ap50_per_epoch"]) == 2 and m["selection"] == "val" and m["n_train_views"] >= 4 and m["n_select_views"] >= 1
    assert set(m["per_part_chosen"]) == set(PARTS) and m["seconds_per_epoch_per_view"] > 0
    assert m["base_val_loss"] == m["curve"][0]["val_loss"] > 0 and m["chosen_val_loss"] == m["curve"][m["chosen_epoch"]]["val_loss"]

    run(["detect", "--params", on, "--cache", cache])
    assert det.attrs(oid)["adapted_weights"] is True
    assert det.attrs(oid)["weights"] == {"spec": str(out), "digest": dir_digest(out)}  # the adapted weights, named
    assert det.stored_fingerprint(oid) != base_fp  # the adapted weights' digest is in the key
    arrays = det.read_all(oid)
    assert set(arrays) == set(base_arrays)
    for name, a in arrays.items():  # same arrays, dtypes and trailing shapes as the base backend
        assert a.dtype == base_arrays[name].dtype and a.shape[1:] == base_arrays[name].shape[1:], name
    assert arrays["offsets"].shape == (len(VIEWS) + 1,) and arrays["feat"].shape[1] == 32

    # re-adapting (different seed -> other weights) changes the digest and so the detect key
    digest_before = dir_digest(out)
    cfg["adapt"]["seed"] = 1
    on.write_text(__import__("yaml").safe_dump(cfg))
    run(["adapt-detector", "--params", on, "--cache", cache, "--metrics", tmp / "metrics", "--device", "cpu"])
    assert dir_digest(out) != digest_before
    fp_adapted = det.stored_fingerprint(oid)
    run(["detect", "--params", on, "--cache", cache])
    assert det.stored_fingerprint(oid) != fp_adapted

    # an adapted directory without safetensors: detect refuses before touching the cache (exit 2)
    (out / "model.safetensors").unlink()
    from tests.stages.conftest import invoke

    res = invoke(["detect", "--params", on, "--cache", cache])
    assert res.exit_code == 2 and f"adapted detector of {CAT}" in res.output and "no model.safetensors" in res.output
    shutil.rmtree(out)


def test_adapted_boxes_flow_through_segment_lift_train_evaluate(rendered, run):
    """The adapted detector's boxes and features go through the rest of the chain unchanged."""
    import numpy as np
    import yaml

    tmp, p, _ = rendered
    cache, models, metrics = tmp / "cache", tmp / "models_flow", tmp / "metrics_flow"
    cfg = load_config(p).model_dump(mode="json")
    cfg["adapt"]["enabled"] = True
    cfg["segment"]["mode"] = "box"
    cfg["train"].update(epochs=2, ablation_boxes=False)
    on = Path(p).with_name("params_flow.yaml")
    on.write_text(yaml.safe_dump(cfg))
    run(["adapt-detector", "--params", on, "--cache", cache, "--metrics", tmp / "metrics", "--device", "cpu"])
    for stage in ("visibility", "superpoints", "detect", "segment", "lift"):
        run([stage, "--params", on, "--cache", cache])
    det, lift = CategoryStore(cache, "detect", CAT), CategoryStore(cache, "lift", CAT)
    for oid in det.object_ids():
        assert det.attrs(oid)["adapted_weights"] is True
        labels = det.read(oid, "label")
        np.testing.assert_array_equal(lift.read(oid, "mask_box_label"), labels)  # every adapted box is lifted, in order
        np.testing.assert_array_equal(lift.read(oid, "mask_box_view"), det.read(oid, "view"))
    run(["train", "--params", on, "--cache", cache, "--models", models, "--metrics", metrics, "--plots", tmp / "plots_flow"])
    assert (models / CAT / "partstad.safetensors").is_file()
    run(["evaluate", "--params", on, "--cache", cache, "--models", models, "--metrics", metrics])
    m = json.loads((metrics / "evaluate" / f"{CAT}.json").read_text())
    assert m["n_test"] == 1 and 0.0 <= m["methods"]["partstad"]["miou"] <= 100.0
    assert "detector" not in " ".join(m.get("simulated_components", []))  # a real (adapted) detector made the boxes
    ev = CategoryStore(cache, "evaluate", CAT)
    oid = ev.object_ids()[0]
    n_points = CategoryStore(cache, "ingest", CAT).read(oid, "xyz").shape[0]
    sem = ev.read(oid, "sem_partstad")
    assert sem.shape == (n_points,) and np.all((sem >= -1) & (sem < len(PARTS)))
