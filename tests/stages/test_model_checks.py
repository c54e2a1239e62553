"""Issue 21 (2): every model load is checked before any work.

Weights files are built here with the real writer (:func:`save_weights`); nothing of the
pipeline runs, because every refusal must happen before ingest, render, detect or SAM: the
tests assert that no cache directory and no output appear.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from own_shapes import coloured_ply_points  # noqa: E402

from pipeline.meta import part_names  # noqa: E402
from pipeline.model import WeightNet  # noqa: E402
from pipeline.posenc import POSENC_DIM  # noqa: E402
from pipeline.train.checkpoint import WeightsFileError, canonical_safetensors, load_weights, save_weights  # noqa: E402
from pipeline.train.loop import TrainResult  # noqa: E402
from pipeline.train.model_card import card_metadata  # noqa: E402

CAT = "Chair"


def weights_file(
    folder: Path,
    category: str = CAT,
    feat_dim: int = 256,
    backend: str = "oracle",
    names: tuple[str, ...] | None = None,
    pos_enc: bool = True,
    name: str = "partstad",
    **meta: str,
) -> Path:
    """A weights file as train writes it (card metadata included unless overridden)."""
    torch.manual_seed(0)
    net = WeightNet(feat_dim + (POSENC_DIM if pos_enc else 0))
    card = card_metadata(category, names if names is not None else part_names(category), backend)
    full = {
        "variant": name,
        "membership": "mask" if name == "partstad" else "box",
        "pos_enc": str(pos_enc),
        "tau": "10.0",
        "eps": "1e-05",
        "masks_only_threshold": "0.5",
        "config": json.dumps({"category": category, "train_config": {}}),
        **card,
        **meta,
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.safetensors"
    save_weights(path, TrainResult(net.state_dict(), 9.0), {k: v for k, v in full.items() if v is not None})
    return path


def rewrite(path: Path, tensors: dict[str, torch.Tensor] | None = None, **meta: str) -> Path:
    """The same file with some tensors or metadata entries replaced."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        old_meta = dict(f.metadata())
        old = {k: f.get_tensor(k) for k in f.keys()}
    path.write_bytes(canonical_safetensors({**old, **(tensors or {})}, {**old_meta, **meta}))
    return path


@pytest.fixture(autouse=True)
def _packaged_defaults(tmp_path, monkeypatch):
    """Run where there is no params.yaml: the packaged defaults (oracle detector, 256-d features)."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def shape(tmp_path: Path) -> Path:
    return coloured_ply_points(tmp_path / "shapes", "0003", n=300)


def predict_args(shape: Path, model_dir: Path, tmp_path: Path, *extra: str) -> list:
    return [
        "predict",
        shape,
        "--category",
        CAT,
        "--model-dir",
        model_dir,
        "--out",
        tmp_path / "out",
        "--cache",
        tmp_path / "cache",
        "-S",
        "data.n_points=300",
        *extra,
    ]


def assert_nothing_ran(tmp_path: Path) -> None:
    """Refused before any work: no cache (so no ingest, render, detect or SAM) and no output."""
    assert not (tmp_path / "cache").exists() and not (tmp_path / "out").exists()


# -- loading: every tensor and number finite, metadata typed ---------------------------------
@pytest.mark.parametrize(
    "change, words",
    [
        (lambda p: rewrite(p, {"cn.weight": torch.full((403, 403), float("nan"))}), "tensor 'cn.weight' holds 162409 non-finite"),
        (lambda p: rewrite(p, {"theta_null": torch.tensor([float("inf")])}), "tensor 'theta_null' holds 1 non-finite"),
        (lambda p: rewrite(p, tau="nan"), "metadata 'tau' is 'nan', not a finite number"),
        (lambda p: rewrite(p, tau="inf"), "metadata 'tau' is 'inf', not a finite number"),
        (lambda p: rewrite(p, eps="0"), "metadata 'eps' is '0'; it must be > 0"),
        (lambda p: rewrite(p, masks_only_threshold="half"), "metadata 'masks_only_threshold' is 'half', not a number"),
        (lambda p: rewrite(p, config="{not json"), "metadata 'config' is not JSON"),
        (lambda p: rewrite(p, config="[1, 2]"), "metadata 'config' is not a JSON object"),
        (lambda p: rewrite(p, part_names='["arm", 3]'), "metadata 'part_names' is not a JSON list of strings"),
        (lambda p: rewrite(p, pos_enc="yes"), "metadata 'pos_enc' is 'yes', not True or False"),
        (lambda p: rewrite(p, {"cn.bias": torch.zeros(7)}), "tensor 'cn.bias' has shape (7,)"),
        (lambda p: rewrite(p, {"extra": torch.zeros(1)}), "unexpected extra"),
        (lambda p: p.write_bytes(b"\x80\x04K\x01."), "not a safetensors weights file"),
    ],
)
def test_unusable_weights_are_refused_naming_the_file(tmp_path, change, words):
    path = weights_file(tmp_path / "m")
    load_weights(path)  # the untouched file loads
    change(path)
    with pytest.raises(WeightsFileError) as err:
        load_weights(path)
    assert words in str(err.value) and str(path) in str(err.value)


@pytest.mark.parametrize(
    "meta, words",
    [
        ({"tau": "nan"}, "'tau' is 'nan'"),
        ({"config": "garbage{"}, "'config' is not JSON"),
    ],
)
def test_predict_and_evaluate_refuse_bad_metadata_with_exit_2(tmp_path, invoke, shape, meta, words):
    path = rewrite(weights_file(tmp_path / "models" / CAT), **meta)
    res = invoke(predict_args(shape, path.parent, tmp_path))
    assert res.exit_code == 2, res.output
    assert words in res.output and str(path) in res.output and "Traceback" not in res.output
    assert_nothing_ran(tmp_path)
    res = invoke(
        ["evaluate", "--category", CAT, "--cache", tmp_path / "cache", "--models", tmp_path / "models", "--metrics", tmp_path / "metrics"]
    )
    assert res.exit_code == 2 and words in res.output and str(path) in res.output and not (tmp_path / "metrics").exists()


def test_nan_tensor_refused_by_predict_and_evaluate(tmp_path, invoke, shape):
    path = rewrite(weights_file(tmp_path / "models" / CAT), {"out.weight": torch.full((1, 403), float("nan"))})
    res = invoke(predict_args(shape, path.parent, tmp_path))
    assert res.exit_code == 2 and "tensor 'out.weight' holds 403 non-finite" in res.output and str(path) in res.output
    assert_nothing_ran(tmp_path)
    res = invoke(
        ["evaluate", "--category", CAT, "--cache", tmp_path / "cache", "--models", tmp_path / "models", "--metrics", tmp_path / "metrics"]
    )
    assert res.exit_code == 2 and "non-finite" in res.output and not (tmp_path / "cache").exists()


def test_a_bad_ablation_file_beside_good_weights_is_refused_too(tmp_path, invoke, shape):
    weights_file(tmp_path / "models" / CAT)
    boxes = rewrite(weights_file(tmp_path / "models" / CAT, name="partstad_boxes"), tau="-inf")
    res = invoke(predict_args(shape, tmp_path / "models" / CAT, tmp_path))
    assert res.exit_code == 2 and str(boxes) in res.output and "'tau' is '-inf'" in res.output
    assert_nothing_ran(tmp_path)


# -- compatibility: category, part names, detector backend and feature width, own layout -----
def test_wrong_category_model_is_refused_before_any_stage(tmp_path, invoke, shape):
    table = weights_file(tmp_path / "models" / "Table", category="Table")
    res = invoke(predict_args(shape, table.parent, tmp_path))
    assert res.exit_code == 2, res.output
    assert "category: model Table, run Chair" in res.output and str(table) in res.output
    assert "use the model trained for Table" in res.output
    assert_nothing_ran(tmp_path)


@pytest.mark.parametrize(
    "kwargs, extra, words",
    [
        ({"names": ("arm", "back", "leg")}, (), "part names: model [arm, back, leg], run [arm, back, leg, seat, wheel]"),
        ({"backend": "grounding_dino"}, (), "detector backend: model grounding_dino, run oracle"),
        ({"feat_dim": 128}, (), "detector feature dimension: model 128, run 256"),
        ({}, ("-S", "detect.feat_dim=64"), "detector feature dimension: model 256, run 64"),
        ({"membership": "box"}, (), "variant 'partstad' is trained on 'mask' membership, the file says 'box'"),
        ({"variant": "partstad_boxes"}, (), "it holds variant 'partstad_boxes', not 'partstad'"),
        ({"feat_dim": 10 - POSENC_DIM, "pos_enc": True}, (), "too small for pos_enc True"),
    ],
)
def test_model_of_another_run_is_refused_naming_both_sides(tmp_path, invoke, shape, kwargs, extra, words):
    path = weights_file(tmp_path / "models" / CAT, **kwargs)
    res = invoke(predict_args(shape, path.parent, tmp_path, *extra))
    assert res.exit_code == 2, res.output
    assert words in res.output and str(path) in res.output
    assert_nothing_ran(tmp_path)


def test_evaluate_refuses_a_mismatched_model_before_any_object(tmp_path, invoke):
    path = weights_file(tmp_path / "models" / CAT, backend="pixels")
    res = invoke(
        ["evaluate", "--category", CAT, "--cache", tmp_path / "cache", "--models", tmp_path / "models", "--metrics", tmp_path / "metrics"]
    )
    assert res.exit_code == 2 and "detector backend: model pixels, run oracle" in res.output and str(path) in res.output
    assert not (tmp_path / "cache").exists() and not (tmp_path / "metrics").exists()


def test_files_of_older_versions_are_checked_on_what_they_record(tmp_path, caplog):
    """A file without the card (trained before it existed) is still checked on its category
    (from its config) and feature width (from its tensors), and the gap is said."""
    from click import ClickException
    from safetensors import safe_open

    from stages.config import PipelineConfig
    from stages.model_check import check_model

    cfg = PipelineConfig()
    legacy = weights_file(tmp_path / "old")
    with safe_open(str(legacy), framework="pt") as f:
        meta = {k: v for k, v in f.metadata().items() if k not in ("part_names", "detect_backend", "category")}
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    legacy.write_bytes(canonical_safetensors(tensors, meta))
    with caplog.at_level("WARNING", logger="partstad"):
        check_model(legacy, cfg, CAT)
    assert "does not record its part names, detector backend" in caplog.text
    with pytest.raises(ClickException) as err:
        check_model(legacy, cfg, "Table")
    assert err.value.exit_code == 2 and "category: model Chair, run Table" in err.value.format_message()
    with pytest.raises(ClickException, match="feature dimension: model 256, run 32"):
        check_model(legacy, PipelineConfig.model_validate({"detect": {"feat_dim": 32}}), CAT)


def test_trained_files_record_their_card(tmp_path):
    """What train writes: every key the checks read, parseable."""
    from stages.config import PipelineConfig
    from stages.model_check import model_metadata

    meta = model_metadata(PipelineConfig.model_validate({"detect": {"backend": "pixels"}}), CAT)
    assert meta == {"category": CAT, "part_names": json.dumps(list(part_names(CAT))), "detect_backend": "pixels"}


def test_simulated_feature_model_meets_a_real_detector(tmp_path, invoke, shape):
    """The issue's case: a model trained on 256-d simulated features, a run with Grounding DINO
    (its width read from the weights' config.json): refused before SAM or the detector load."""
    gdino = tmp_path / "gdino"
    gdino.mkdir()
    (gdino / "config.json").write_text(json.dumps({"d_model": 512}))
    path = weights_file(tmp_path / "models" / CAT)
    res = invoke(predict_args(shape, path.parent, tmp_path, "-S", "detect.backend=grounding_dino", "-S", f"detect.weights_dir={gdino}"))
    assert res.exit_code == 2, res.output
    assert (
        "detector backend: model oracle, run grounding_dino" in res.output
        and "detector feature dimension: model 256, run 512" in res.output
    )
    assert_nothing_ran(tmp_path)
