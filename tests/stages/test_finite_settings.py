"""Every float setting is finite and in range; training that goes non-finite replaces nothing;
an empty params file says so; the report's simulated flag follows the configuration.

The schema walk (:func:`float_leaves`) visits every float of :class:`PipelineConfig`, nested
sections and containers (``render.views``, ``detect.oracle.fp_size``) included, so a float
field added later without the finite check, or without a range, fails here.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from stages.config import ConfigError, PipelineConfig, parse_config
from stages.stage_table import chain

#: Floats deliberately without a numeric range (why, per key). Everything else needs one.
UNBOUNDED = {
    "render.views": "camera (elevation, azimuth) in degrees: any finite angle is a camera",
}

BAD = (math.nan, math.inf, -math.inf)


def _is_float(tp: Any) -> bool:
    return tp is float


def _poisoned(tp: Any, bad: float) -> Iterator[Any]:
    """Values of type ``tp`` that hold ``bad`` in one float position (one per position)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Annotated:
        yield from _poisoned(args[0], bad)
    elif _is_float(tp):
        yield bad
    elif origin in (typing.Union, types.UnionType):
        for a in args:
            if a is not type(None):
                yield from _poisoned(a, bad)
    elif origin is tuple:
        for i, a in enumerate(args):
            for v in _poisoned(a, bad):
                yield [v if j == i else _sample(b) for j, b in enumerate(args)]
    elif origin is list:
        for v in _poisoned(args[0], bad):
            yield [v]
    elif origin is dict:
        for v in _poisoned(args[1], bad):
            yield {"Chair": v}


def _sample(tp: Any) -> Any:
    """A valid-looking filler for the other positions of a tuple."""
    tp = typing.get_args(tp)[0] if typing.get_origin(tp) is typing.Annotated else tp
    return 0.5 if _is_float(tp) else 1


def float_leaves(model: type[BaseModel] = PipelineConfig, prefix: str = "") -> Iterator[tuple[str, Any, Any]]:
    """(dotted key, field annotation, FieldInfo) of every field holding a float somewhere."""
    for name, info in model.model_fields.items():
        tp, key = info.annotation, f"{prefix}{name}"
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            yield from float_leaves(tp, key + ".")
        elif any(True for _ in _poisoned(tp, math.nan)):
            yield key, tp, info


def _nested(key: str, value: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    node = out
    parts = key.split(".")
    for p in parts[:-1]:
        node = node.setdefault(p, {})
    node[parts[-1]] = value
    return out


LEAVES = sorted(float_leaves(), key=lambda leaf: leaf[0])


def test_the_walk_finds_the_floats_in_nested_sections_and_containers():
    keys = {k for k, _, _ in LEAVES}
    assert {
        "train.lr",
        "train.tau",
        "render.views",
        "detect.oracle.fp_size",
        "detect.pixels.sigma",
        "segment.pixels.inside",
        "adapt.lr",
        "lift.iou_gate",
    } <= keys
    assert len(keys) >= 40


@pytest.mark.parametrize("key", [k for k, _, _ in LEAVES])
def test_every_float_setting_refuses_nan_and_inf_naming_the_key(key):
    tp = dict((k, t) for k, t, _ in LEAVES)[key]
    for bad in BAD:
        for value in _poisoned(tp, bad):
            with pytest.raises(ConfigError) as err:
                parse_config(_nested(key, value), "params.yaml")
            lines = [ln for ln in str(err.value).splitlines() if ln.strip().startswith(key)]
            assert lines and "finite" in lines[0], (key, value, str(err.value))


def _bounded(metadata: list[Any]) -> bool:
    return any(getattr(m, attr, None) is not None for m in metadata for attr in ("gt", "ge", "lt", "le"))


def _has_range(tp: Any, info: Any) -> bool:
    """A numeric bound on the field itself, or (tuples) on each of its float elements."""
    if _bounded(info.metadata):
        return True
    if typing.get_origin(tp) is not tuple:
        return False
    for a in typing.get_args(tp):
        annotated = typing.get_origin(a) is typing.Annotated
        if _is_float(typing.get_args(a)[0] if annotated else a) and not (annotated and _bounded(a.__metadata__[0].metadata)):
            return False
    return True


@pytest.mark.parametrize("key", [k for k, _, _ in LEAVES])
def test_every_float_setting_has_a_range_or_says_why_not(key):
    _, tp, info = next(leaf for leaf in LEAVES if leaf[0] == key)
    assert _has_range(tp, info) or key in UNBOUNDED, (
        f"{key}: give it a range (Field(ge=..., le=...)) or list it in UNBOUNDED with the reason"
    )


@pytest.mark.parametrize(
    "key,value,words",
    [
        ("train.lr", 2.0, "less than or equal to 1"),
        ("train.lr_null", 0.0, "greater than 0"),
        ("train.weight_decay", 5.0, "less than or equal to 1"),
        ("train.tau", 1e39, "less than or equal to 1000"),
        ("detect.oracle.fp_size", [0.1, 3.0], "less than or equal to 1"),
        ("detect.oracle.fp_rate", 1e19, "less than or equal to 1000"),
        ("detect.oracle.feat_noise", 1e6, "less than or equal to 1000"),
        ("detect.pixels.temperature", 1e-9, "greater than or equal to 0.001"),
        ("detect.pixels.lr", 5.0, "less than or equal to 1"),
        ("segment.pixels.sigma", 1e9, "less than or equal to 100"),
        ("adapt.weight_decay", 2.0, "less than or equal to 1"),
    ],
)
def test_ranges_of_the_settings_that_break_arithmetic(key, value, words):
    with pytest.raises(ConfigError) as err:
        parse_config(_nested(key, value), "params.yaml")
    assert key in str(err.value) and words in str(err.value)


def test_defaults_and_paper_values_stay_valid():
    cfg = parse_config({})
    assert cfg.train.lr == 1e-4 and cfg.train.tau == 10.0 and cfg.detect.oracle.fp_size == (0.1, 0.5)
    repo_params = yaml.safe_load((Path(__file__).resolve().parents[2] / "params.yaml").read_text())
    parse_config(repo_params)  # the committed demo settings are all in range


# -- the command line: exit 2, the key named, no traceback --------------------------------------
@pytest.mark.parametrize(
    "override",
    [
        "train.lr=1e999",
        "train.lr=.inf",
        "train.lr=nan",
        "detect.oracle.p_max=.nan",
        "render.views=[[10, .inf]]",
        "detect.pixels.sigma=-.inf",
    ],
)
def test_a_non_finite_override_exits_2_naming_the_key(tmp_path, invoke, write_params, override):
    params = write_params(tmp_path)
    res = invoke(["params", "--params", params, "-S", override])
    assert res.exit_code == 2, res.output
    key = override.split("=")[0]
    assert any(ln.strip().startswith(key) and "finite" in ln for ln in res.output.splitlines()), res.output
    assert "Traceback" not in res.output


def test_a_non_finite_value_in_params_yaml_exits_2_before_any_work(tmp_path, invoke, write_params):
    params = write_params(tmp_path, train={"lr": math.inf})  # yaml writes .inf
    assert ".inf" in params.read_text()
    res = invoke(["train", "--params", params, "--cache", tmp_path / "cache", "--models", tmp_path / "models"])
    assert res.exit_code == 2 and "train.lr: Input should be a finite number" in res.output
    assert not (tmp_path / "models").exists()


# -- an empty params file ---------------------------------------------------------------------
@pytest.mark.parametrize("text", ["", "\n\n", "# everything commented out\n# train:\n#   lr: 0.1\n"])
def test_an_empty_params_file_says_it_uses_the_defaults(tmp_path, invoke, text):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    res = invoke(["params", "--params", path])
    assert res.exit_code == 0, res.output
    said = [ln for ln in res.stderr.splitlines() if "is empty" in ln]
    assert said == [f"{path} is empty: using defaults for every setting (`partstad params --defaults` lists them)"]
    assert "train.lr" in res.stdout and "0.0001" in res.stdout


def test_an_empty_params_file_with_overrides_names_what_is_default(tmp_path, invoke):
    path = tmp_path / "params.yaml"
    path.write_text("# nothing\n")
    res = invoke(["params", "--params", path, "-S", "train.epochs=3"])
    assert res.exit_code == 0
    assert f"{path} is empty: using defaults for every setting not given with -S" in res.stderr


def test_a_params_file_with_settings_says_nothing_about_defaults(tmp_path, invoke, write_params):
    res = invoke(["params", "--params", write_params(tmp_path)])
    assert res.exit_code == 0 and "is empty" not in res.stderr


# -- the report's simulated flag ----------------------------------------------------------------
def _empty_result(tmp_path: Path, write_params, **sections: dict[str, Any]) -> tuple[Path, Path]:
    params = write_params(tmp_path, **sections)
    metrics = tmp_path / "metrics"
    (metrics / "evaluate").mkdir(parents=True)
    (metrics / "evaluate" / "Chair.json").write_text(json.dumps({"n_test": 0, "methods": {}}))
    return params, metrics


@pytest.mark.parametrize("backend,mode,component", [("oracle", "oracle", "detector (oracle"), ("pixels", "pixels", "detector (pixels")])
def test_report_on_an_empty_result_of_a_simulated_run_says_simulated(tmp_path, run, write_params, backend, mode, component):
    params, metrics = _empty_result(tmp_path, write_params, detect={"backend": backend}, segment={"mode": mode})
    run(
        [
            "report",
            "--params",
            params,
            "--cache",
            tmp_path / "cache",
            "--metrics",
            metrics,
            "--plots",
            tmp_path / "plots",
            "--out",
            tmp_path / "reports",
            "--studies",
            tmp_path / "none",
        ]
    )
    summary = json.loads((metrics / "summary.json").read_text())
    assert summary["simulated"] is True
    assert any(c.startswith(component) for c in summary["simulated_components"])
    assert any(c.startswith("SAM (") for c in summary["simulated_components"])
    assert "Simulated components produced these numbers" in (tmp_path / "reports" / "index.html").read_text()


def test_report_of_a_real_configuration_is_not_simulated(tmp_path, run, write_params):
    params, metrics = _empty_result(
        tmp_path,
        write_params,
        data={"source": "files", "root": str(tmp_path)},
        detect={"backend": "grounding_dino", "weights_dir": str(tmp_path)},
        segment={"mode": "box"},
    )
    run(
        [
            "report",
            "--params",
            params,
            "--cache",
            tmp_path / "cache",
            "--metrics",
            metrics,
            "--plots",
            tmp_path / "plots",
            "--out",
            tmp_path / "reports",
            "--studies",
            tmp_path / "none",
        ]
    )
    summary = json.loads((metrics / "summary.json").read_text())
    assert summary["simulated"] is False and "simulated_components" not in summary


def test_report_refuses_a_metrics_file_that_is_not_an_object(tmp_path, invoke, write_params):
    params, metrics = _empty_result(tmp_path, write_params)
    (metrics / "evaluate" / "Chair.json").write_text("[]")
    res = invoke(["report", "--params", params, "--cache", tmp_path / "cache", "--metrics", metrics, "--out", tmp_path / "reports"])
    assert res.exit_code == 1 and "Chair.json holds no metrics object" in res.output and "Traceback" not in res.output
    assert not (metrics / "summary.json").exists()


# -- training that goes non-finite replaces nothing ---------------------------------------------
CHAIN = list(chain("lift"))
TINY = dict(
    data={"n_points": 1500, "n_fewshot": 2, "n_val": 1, "n_test": 0},
    render={"image_size": 64},
    detect={"feat_dim": 32},
    train={"epochs": 2},
)


def _digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.endswith(".lock")
    }


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid value:RuntimeWarning")
def test_training_that_goes_non_finite_keeps_the_previous_model(tmp_path, run, invoke, write_params, monkeypatch):
    """The schema now refuses every setting that made training diverge, so the divergence comes
    from a learning rate the schema cannot express (1e30), handed to the real training loop."""
    import stages.train as train_stage

    params = write_params(tmp_path, **TINY)
    cache = tmp_path / "cache"
    for stage in CHAIN:
        run([stage, "--params", params, "--cache", cache])
    outs = ["--models", tmp_path / "models", "--metrics", tmp_path / "metrics", "--plots", tmp_path / "plots", "--device", "cpu"]
    run(["train", "--params", params, "--cache", cache, *outs])
    before = {d: _digests(tmp_path / d) for d in ("models", "metrics", "plots")}
    assert "Chair/partstad.safetensors" in before["models"]

    real = train_stage.train_params
    monkeypatch.setattr(
        train_stage, "train_params", lambda sec, device: real(sec, device).__class__(**{**vars(real(sec, device)), "lr": 1e30})
    )
    res = invoke(["train", "--params", params, "--cache", cache, *outs])
    assert res.exit_code == 1, res.output
    line = next(ln for ln in res.output.splitlines() if "non-finite" in ln)
    assert re.search(r"\[train\] Chair partstad: non-finite training at epoch [1-9]", line), line
    assert "previous model" in line and "train.lr" in line
    assert "Traceback" not in res.output
    assert {d: _digests(tmp_path / d) for d in ("models", "metrics", "plots")} == before
    assert not list((tmp_path / "models").glob(".staging-*"))


def _seed_keys(model: type[BaseModel] = PipelineConfig, prefix: str = "") -> Iterator[str]:
    for name, info in model.model_fields.items():
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            yield from _seed_keys(info.annotation, f"{prefix}{name}.")
        elif name.endswith("seed"):
            yield f"{prefix}{name}"


@pytest.mark.parametrize("key", sorted(_seed_keys()))
def test_every_seed_is_one_numpy_and_torch_accept(key):
    """default_rng refuses negative seeds and torch.manual_seed seeds past 64 bits: both would
    crash a stage after its objects started, so the schema refuses them (exit 2)."""
    assert parse_config(_nested(key, 2**63 - 1)) is not None
    for bad in (-1, 2**64):
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            parse_config(_nested(key, bad))
