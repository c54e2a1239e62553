"""Shared helpers for the stage tests: a tiny params.yaml and an in-process `partstad` runner.

Everything a test writes (cache, models, metrics, plots, reports, exports) lives under the
test's own tmp directory; nothing touches the checkout's cache/ or outputs.
"""

from __future__ import annotations

import copy
import traceback
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner, Result

from stages.cli import main

PAPER_VIEWS = [[10, 0], [10, 90], [10, 180], [10, 270], [40, 0], [40, 120], [40, 240], [-20, 60], [-20, 180], [-20, 300]]

#: Everything as in the repository's params.yaml, shrunk for tests.
BASE_PARAMS: dict[str, Any] = {
    "categories": ["Chair"],
    "data": {"source": "synthetic", "root": None, "n_points": 3000, "seed": 0, "n_fewshot": 2, "n_val": 1, "n_test": 2},
    "render": {
        "backend": "numpy",
        "image_size": 96,
        "distance": 2.2,
        "fov_deg": 60.0,
        "radius_ndc": 0.005,
        "footprint": "disc",
        "views": PAPER_VIEWS,
    },
    "visibility": {},
    "superpoints": {"backend": "greedy", "reg": 0.05, "k_adj": 10, "rgb_weight": 0.3, "min_size": 10},
    "detect": {
        "backend": "oracle",
        "feat_dim": 256,
        "seed": 0,
        "weights_dir": None,
        "score_threshold": 0.5,
        "max_per_view": 100,
        "oracle": {},
    },
    "segment": {"mode": "oracle", "sam_model_type": "vit_b", "sam_checkpoint": None, "seed": 0, "boundary_noise": 0.2},
    "lift": {"iou_gate": 1.0e-6, "whole_object_thresh": 0.98},
    "train": {
        "epochs": 3,
        "batch_size": 2,
        "lr": 1.0e-4,
        "lr_null": 0.05,
        "weight_decay": 0.01,
        "tau": 10.0,
        "seed": 0,
        "pos_enc": True,
        "absent_parts": "paper",
        "ablation_boxes": True,
    },
    "evaluate": {"splits": ["test"]},
    "report": {"n_examples": 2},
}


def tiny_params(categories: list[str] | None = None, **sections: dict[str, Any]) -> dict[str, Any]:
    """BASE_PARAMS with `categories` and per-section overrides (merged one level deep)."""
    p = copy.deepcopy(BASE_PARAMS)
    if categories is not None:
        p["categories"] = list(categories)
    for name, over in sections.items():
        p[name] = {**(p.get(name) or {}), **over}
    return p


def write_params(directory: Path, categories: list[str] | None = None, name: str = "params.yaml", **sections: dict[str, Any]) -> Path:
    """Write a tiny params file into `directory` and return its path."""
    path = Path(directory) / name
    path.write_text(yaml.safe_dump(tiny_params(categories, **sections), sort_keys=False))
    return path


def invoke(args: list[str]) -> Result:
    """Run `partstad <args>` in-process; the result keeps stdout, stderr and the exception."""
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=True)


def describe(res: Result) -> str:
    tb = (
        "".join(traceback.format_exception(*res.exc_info))
        if res.exc_info and res.exception and not isinstance(res.exception, SystemExit)
        else ""
    )
    return f"exit code {res.exit_code}\n--- output ---\n{res.output}\n--- traceback ---\n{tb}"


def run(args: list[str]) -> Result:
    """`partstad <args>` that must succeed (exit code 0); prints everything on failure."""
    res = invoke(args)
    assert res.exit_code == 0, f"partstad {' '.join(map(str, args))} failed: {describe(res)}"
    return res


def run_failing(args: list[str]) -> Result:
    """`partstad <args>` that must report failed objects (or nothing matched): exit code 1,
    the message that other results are kept; prints everything on mismatch."""
    res = invoke(args)
    assert res.exit_code == 1, f"partstad {' '.join(map(str, args))} should exit 1: {describe(res)}"
    assert res.exception is None or isinstance(res.exception, SystemExit), describe(res)
    return res


# Fixtures hand the helpers to the test modules (no `import conftest`, which is ambiguous as
# soon as another test folder grows its own conftest.py).
@pytest.fixture(name="run", scope="session")
def run_fixture():
    """`run(args)`: invoke `partstad <args>` in-process and assert exit code 0."""
    return run


@pytest.fixture(name="run_failing", scope="session")
def run_failing_fixture():
    """`run_failing(args)`: invoke `partstad <args>` in-process and assert exit code 1."""
    return run_failing


@pytest.fixture(name="invoke", scope="session")
def invoke_fixture():
    """`invoke(args)`: invoke `partstad <args>` in-process, whatever the exit code."""
    return invoke


@pytest.fixture(name="write_params", scope="session")
def write_params_fixture():
    """`write_params(directory, categories=None, name="params.yaml", **section_overrides)`."""
    return write_params


@pytest.fixture
def params_file(tmp_path: Path) -> Path:
    """tmp_path/params.yaml with one category (Chair) and tiny sizes."""
    return write_params(tmp_path)


@pytest.fixture
def params_two(tmp_path: Path) -> Path:
    """tmp_path/params.yaml with two categories (Chair, Bottle) and tiny sizes."""
    return write_params(tmp_path, ["Chair", "Bottle"])
