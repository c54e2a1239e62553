"""One definition per setting: the ``train`` and ``lift`` sections come from the pipeline
dataclasses next to the maths (names, defaults, docs), with no hand mapping between them."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

from pipeline.lift import LiftParams
from pipeline.train.params import RUNTIME_FIELDS, TrainParams
from stages.config import ConfigError, LiftConfig, TrainConfig, parse_config


@pytest.mark.parametrize("dataclass_, model, extra", [(TrainParams, TrainConfig, {"ablation_boxes"}), (LiftParams, LiftConfig, set())])
def test_section_fields_are_the_dataclass_fields(dataclass_, model, extra):
    fields = {f.name: f for f in dataclasses.fields(dataclass_) if f.name not in RUNTIME_FIELDS}
    assert set(model.model_fields) == set(fields) | extra
    for name, f in fields.items():
        info = model.model_fields[name]
        assert info.default == f.default, name
        assert info.description, f"{name} has no doc for `partstad params`"


def test_train_section_gives_train_params_by_name():
    """Every params.yaml key reaches TrainParams under its own name (batch_size included)."""
    sec = parse_config(
        {
            "train": {
                "epochs": 7,
                "batch_size": 3,
                "lr": 0.002,
                "lr_null": 0.01,
                "weight_decay": 0.5,
                "tau": 2.0,
                "seed": 9,
                "pos_enc": False,
                "absent_parts": "skip",
            }
        }
    ).train
    tp = sec.params("cuda")
    assert isinstance(tp, TrainParams)
    assert (tp.epochs, tp.batch_size, tp.lr, tp.lr_null, tp.weight_decay, tp.tau, tp.seed, tp.pos_enc, tp.absent_parts, tp.device) == (
        7,
        3,
        0.002,
        0.01,
        0.5,
        2.0,
        9,
        False,
        "skip",
        "cuda",
    )
    assert (tp.eps, tp.threads) == (TrainParams.eps, TrainParams.threads)


@pytest.mark.parametrize(
    "key, value",
    [
        ("train.batch_size", 0),
        ("train.absent_parts", "drop"),
        ("train.seed", -1),
        ("train.tau", 1001.0),
        ("train.batch", 2),
        ("train.device", "cuda"),
        ("lift.iou_gate", 1.0),
        ("lift.whole_object_thresh", 0.0),
    ],
)
def test_ranges_and_runtime_fields_are_refused(key, value):
    section, name = key.split(".")
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        parse_config({section: {name: value}})


def test_importing_the_config_does_not_import_torch():
    """`partstad train`/`evaluate` pin torch's portable kernels before torch is first imported,
    after the config module is loaded: a torch import there would change the trained bits."""
    code = "import sys, stages.config, stages.common; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
