"""`partstad doctor`: packages, backends that will run, weights named in params that load (exit 1 if not)."""
from __future__ import annotations


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
