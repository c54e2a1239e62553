"""`partstad doctor`: packages, backends that will run, weights named in params that load (exit 1 if not)."""

from __future__ import annotations

import yaml


def test_doctor_on_the_packaged_defaults(tmp_path, invoke, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no params.yaml here: packaged defaults
    res = invoke(["doctor"])
    assert res.exit_code == 0, res.output
    lines = {line[5:27].strip(): (line[:4].strip(), line[28:]) for line in res.output.splitlines() if len(line) > 27}
    assert lines["torch"][0] == "ok" and "--device auto -> " in lines["torch"][1]
    assert lines["detect backend"][1].startswith("oracle (simulated") and lines["segment mode"][1].startswith("oracle (simulated")
    assert lines["render backend"][1] == "numpy" and {"transformers", "segment_anything", "dvc", "pyrender/EGL"} <= set(lines)
    assert "everything the params use is in place" in res.output


def test_doctor_fails_on_weights_that_do_not_load(tmp_path, invoke, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sam.pth").write_bytes(b"\x80\x04 not a checkpoint")
    res = invoke(["doctor", "-S", "segment.mode=sam", "-S", f"segment.sam_checkpoint={tmp_path / 'sam.pth'}"])
    assert res.exit_code == 1
    assert "FAIL segment.sam_checkpoint" in res.output and "sam.pth does not load as vit_b" in res.output
    assert "segment mode           sam (real, vit_b)" in res.output
    res = invoke(["doctor", "-S", "detect.backend=grounding_dino", "-S", f"detect.weights_dir={tmp_path}"])
    assert res.exit_code == 1 and "FAIL detect.weights_dir" in res.output and "no config.json" in res.output
    res = invoke(["doctor", "-S", "detect.backend=grounding_dino"])
    assert res.exit_code == 1 and "needs detect.weights_dir" in res.output
    res = invoke(["doctor", "-S", "detect.backend=yolo"])
    assert res.exit_code == 2 and "detect.backend" in res.output


def test_doctor_reports_the_backends_the_pipeline_really_picks(tmp_path, invoke, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = invoke(["doctor", "-S", "render.backend=auto", "-S", "superpoints.backend=auto"])
    assert res.exit_code == 0, res.output
    assert "render backend         numpy" in res.output  # auto + disc footprint = the numpy splat
    assert "superpoints backend    greedy" in res.output  # auto never depends on what is installed
    res = invoke(["doctor", "-S", "render.backend=pyrender"])  # pyrender cannot draw the default disc footprint
    assert res.exit_code == 1 and "FAIL render backend" in res.output and "footprint" in res.output


def test_doctor_warns_when_dvc_yaml_misses_a_category_of_params(tmp_path, invoke, monkeypatch, write_params):
    monkeypatch.chdir(tmp_path)
    res = invoke(["doctor", "--no-load"])
    assert res.exit_code == 0 and "--   dvc.yaml               none in" in res.output
    write_params(tmp_path, ["Chair", "Bottle"])
    per_cat = lambda s, suffix=".zarr": [{f"cache/{s}/{c}{suffix}": {"persist": True}} for c in ("Chair", "Bottle")]  # noqa: E731
    dvc = {
        "stages": {
            "ingest": {"cmd": "partstad ingest", "params": ["categories", "data"], "outs": per_cat("ingest")},
            "train": {
                "cmd": "partstad train",
                "outs": ["models/Chair", "models/Bottle"],
                "metrics": ["metrics/train/Chair.json", "metrics/train/Bottle.json"],
                "plots": [
                    {"plots/train/Chair.csv": {"x": "epoch", "y": "val_miou"}},
                    {"plots/train/Bottle.csv": {"x": "epoch", "y": "val_miou"}},
                ],
            },
            "report": {
                "cmd": "partstad report",
                "deps": ["metrics/evaluate"],
                "outs": ["reports/index.html"],
                "metrics": ["metrics/summary.json"],
            },
        }
    }
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(dvc, sort_keys=False))
    res = invoke(["doctor", "--no-load"])
    assert res.exit_code == 0, res.output
    assert "ok   dvc.yaml               per-category outs of 2 stages cover the 2 categories of params" in res.output
    assert "warning" not in res.output

    # a category added to params but not to dvc.yaml: a warning naming it, not a failure
    res = invoke(["doctor", "--no-load", "-S", "categories=[Chair, Bottle, Lamp]"])
    assert res.exit_code == 0, res.output
    line = next(x for x in res.output.splitlines() if x.startswith("WARN dvc.yaml"))
    assert "do not cover Lamp of params (ingest, train)" in line and "python tools/sync_dvc_deps.py" in line
    assert "everything the params use is in place (1 warning above)" in res.output
    # one left out of a single stage's outs, and one dropped from params
    dvc["stages"]["train"]["plots"].pop()
    (tmp_path / "dvc.yaml").write_text(yaml.safe_dump(dvc, sort_keys=False))
    res = invoke(["doctor", "--no-load", "-S", "categories=[Chair]"])
    assert res.exit_code == 0 and "WARN dvc.yaml               outs name Bottle, not in params" in res.output
    res = invoke(["doctor", "--no-load"])
    assert res.exit_code == 0 and "do not cover Bottle of params (train)" in res.output
    (tmp_path / "dvc.yaml").write_text("stages: [oops")
    res = invoke(["doctor", "--no-load"])
    assert res.exit_code == 0 and "WARN dvc.yaml               cannot read dvc.yaml" in res.output
