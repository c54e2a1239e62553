"""User mistakes (command line, environment, side files) are one line and an exit code, never a traceback.

Bad options and environment variables: exit 2 before anything is written. A damaged ingest
manifest: the category is reported (exit 1) and `partstad ingest` rebuilds the file.
"""

from __future__ import annotations

import json
import math

import click
import dask
import pytest
from click.testing import CliRunner

from stages.cli import main
from stages.scheduling import SchedulerType, scheduler_problem

COMMANDS = main.list_commands(click.Context(main))


def command(name: str) -> click.Command:
    cmd = main.get_command(click.Context(main), name)
    assert cmd is not None
    return cmd


def invoke_env(args: list, env: dict[str, str]):
    return CliRunner().invoke(main, [str(a) for a in args], env=env, catch_exceptions=True)


def one_line_error(res) -> str:
    """The `Error: ...` line; asserts there is exactly one and no traceback."""
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert "Traceback" not in res.output, res.output
    lines = [line for line in res.output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, res.output
    return lines[0]


@pytest.mark.parametrize(
    "value",
    [
        "sync",
        "threads",
        "processes",
        "local:1",
        "local:12",
        "tcp://127.0.0.1:8786",
        "tls://sched.example.org:8786",
        "tcp://[::1]:8786",
        "localhost:8786",
    ],
)
def test_scheduler_values_that_run(value):
    assert scheduler_problem(value) is None


@pytest.mark.parametrize(
    "value, says",
    [
        ("foo", "use sync"),
        ("local:0", "N >= 1"),
        ("local:-2", "N >= 1"),
        ("local:x", "N >= 1"),
        ("local:", "N >= 1"),
        ("tcp://", "not host:port"),
        ("tcp://host", "not host:port"),
        ("tcp://host:99999", "1..65535"),
        ("tcp://host:port", "1..65535"),
        ("http://host:80", "protocol"),
        ("", "use sync"),
        ("a:b:c", "use sync"),
    ],
)
def test_scheduler_values_that_cannot_run_say_why(value, says):
    problem = scheduler_problem(value)
    assert problem is not None and says in problem


def test_every_command_with_a_scheduler_validates_it():
    with_scheduler = [name for name in COMMANDS if any(p.name == "scheduler" for p in command(name).params)]
    assert {"ingest", "render", "detect", "lift", "evaluate", "predict", "import-partstad"} <= set(with_scheduler)
    for name in with_scheduler:
        param = next(p for p in command(name).params if p.name == "scheduler")
        assert isinstance(param.type, SchedulerType), f"`partstad {name} --scheduler` is not validated"
        assert param.envvar == "PARTSTAD_SCHEDULER"


@pytest.mark.parametrize("name", ["ingest", "render", "lift", "evaluate"])
@pytest.mark.parametrize("value", ["foo", "local:0"])
def test_a_bad_scheduler_is_exit_2_before_anything_is_written(tmp_path, invoke, params_file, name, value):
    res = invoke([name, "--params", params_file, "--cache", tmp_path / "cache", "--scheduler", value])
    assert res.exit_code == 2 and "--scheduler" in one_line_error(res) and value in res.output
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize(
    "var, value, name",
    [
        ("PARTSTAD_SCHEDULER", "garbage", "render"),
        ("PARTSTAD_SCHEDULER", "local:0", "ingest"),
        ("PARTSTAD_JOBS", "-1", "render"),
        ("PARTSTAD_JOBS", "two", "train"),
    ],
)
def test_a_bad_environment_variable_is_exit_2_naming_it(tmp_path, params_file, var, value, name):
    res = invoke_env([name, "--params", params_file, "--cache", tmp_path / "cache"], {var: value})
    assert res.exit_code == 2 and f"{var}={value!r}" in one_line_error(res)
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("value", ["-5", "nan", "-inf", "soon"])
def test_a_bad_lock_timeout_is_exit_2(tmp_path, invoke, params_file, value):
    res = invoke(["ingest", "--params", params_file, "--cache", tmp_path / "cache", "--lock-timeout", value])
    assert res.exit_code == 2 and "--lock-timeout" in one_line_error(res)
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("value", ["-1", "0", "2.5", "inf"])
def test_lock_timeouts_that_mean_something_are_accepted(tmp_path, run, params_file, value):
    out = run(["ingest", "--params", params_file, "--cache", tmp_path / "cache", "--lock-timeout", value]).output
    assert "[ingest] Chair: 5 computed" in out and not math.isnan(float(value))


@pytest.mark.parametrize("name", ["ingest", "render", "evaluate", "export"])
@pytest.mark.parametrize(
    "value, says",
    [
        (",,,", "names no object"),
        ("../x", "'..'"),
        ("Chair/a/b", "more than one '/'"),
        ("Chair/00 1", "whitespace"),
        ("Chair/000\u00e9", "non-ASCII"),
    ],
)
def test_garbage_objects_are_exit_2_naming_the_id(tmp_path, invoke, params_file, name, value, says):
    res = invoke([name, "--params", params_file, "--cache", tmp_path / "cache", "--objects", value])
    line = one_line_error(res)
    assert res.exit_code == 2 and "--objects" in line and says in line
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("name", ["ingest", "render"])
@pytest.mark.parametrize(
    "value, says",
    [
        ("params.yaml", "is a file"),
        ("params.yaml/sub", "is a file"),
        ("", "empty path"),
        ("nosuchfs://bucket/cache", "no file system for nosuchfs://"),
    ],
)
def test_a_cache_that_cannot_be_a_directory_is_exit_2(tmp_path, invoke, params_file, monkeypatch, name, value, says):
    monkeypatch.chdir(tmp_path)
    res = invoke([name, "--params", params_file, "--cache", value])
    line = one_line_error(res)
    assert res.exit_code == 2 and "--cache" in line and says in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_objects_with_blanks_around_ids_select_them(tmp_path, run, params_file):
    cache = tmp_path / "cache"
    out = run(["ingest", "--params", params_file, "--cache", cache, "--objects", " 0001 , Chair/0003,"]).output
    assert "[ingest] Chair: 2 computed" in out
    assert sorted(r["object"] for r in json.loads((cache / "ingest" / "Chair.zarr" / "manifest.json").read_text())) == [
        "Chair/0001",
        "Chair/0003",
    ]


def test_device_cuda_without_a_gpu_is_exit_2(tmp_path, invoke, params_file):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    res = invoke(["train", "--params", params_file, "--cache", tmp_path / "cache", "--models", tmp_path / "models", "--device", "cuda"])
    assert res.exit_code == 2 and "--device cuda" in one_line_error(res)
    assert not (tmp_path / "models").exists()


def test_doctor_fails_a_cuda_device_that_is_not_there(invoke, params_file):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    res = invoke(["doctor", "--params", params_file, "--device", "cuda", "--no-load"])
    assert res.exit_code == 1 and "FAIL --device cuda" in res.output and "--device cuda" in one_line_error(res)


def test_an_unreachable_dask_scheduler_is_exit_2(tmp_path, run, invoke, params_file):
    cache = tmp_path / "cache"
    run(["ingest", "--params", params_file, "--cache", cache])
    import distributed  # noqa: F401 - first: else leaving dask.config.set deletes the defaults distributed registers inside it

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        res = invoke(["render", "--params", params_file, "--cache", cache, "--scheduler", "tcp://127.0.0.1:9"])
    line = one_line_error(res)
    assert res.exit_code == 2 and "tcp://127.0.0.1:9" in line and "cannot reach" in line


# -- side files ------------------------------------------------------------------------

GARBAGE = {
    "not json": b"garbage{",
    "binary": b"\xff\xfe\x00",
    "a dict": b'{"a": 1}',
    "rows not objects": b'[1, 2, {"x": 1}]',
    "a path as id": b'[{"object": "Chair/../../../tmp/evil", "split": "test", "source": "synthetic"}]',
}


@pytest.mark.parametrize("kind", sorted(GARBAGE))
def test_a_damaged_manifest_fails_its_category_and_ingest_rebuilds_it(tmp_path, run, invoke, write_params, caplog, kind):
    params = write_params(tmp_path, ["Chair", "Bottle"])
    cache = tmp_path / "cache"
    run(["ingest", "--params", params, "--cache", cache])
    path = cache / "ingest" / "Chair.zarr" / "manifest.json"
    good = json.loads(path.read_text())
    path.write_bytes(GARBAGE[kind])

    res = invoke(["render", "--params", params, "--cache", cache, "--jobs", "1"])
    assert res.exit_code == 1 and "[render] Bottle: 5 computed" in res.output  # the other category goes on
    assert f"ERROR [render] Chair: file {path}" in res.output
    assert "re-run `partstad ingest`" in res.output and "Traceback" not in res.output
    assert not (cache / "render" / "Chair.zarr").exists() and not (tmp_path / "tmp" / "evil.zip").exists()

    res = invoke(["train", "--params", params, "--cache", cache, "--models", tmp_path / "models", "--device", "cpu", "--category", "Chair"])
    assert res.exit_code == 1 and f"ERROR [train] Chair: file {path}" in res.output and "Traceback" not in res.output
    # both categories: Chair fails with that line, Bottle (next, same process) is still attempted
    res = invoke(["train", "--params", params, "--cache", cache, "--models", tmp_path / "models", "--device", "cpu", "--jobs", "1"])
    assert res.exit_code == 1 and f"ERROR [train] Chair: file {path}" in res.output and "Traceback" not in res.output
    assert "ERROR [train] Bottle:" in res.output and "2 problem(s)" in res.output  # Bottle went on (it has no lift yet)

    with caplog.at_level("WARNING", logger="partstad"):
        out = run(["ingest", "--params", params, "--cache", cache]).output
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"[ingest] file {path}: ")][0].endswith(
        "; writing a fresh one"
    )
    assert "[ingest] Chair: 0 computed, 5 up to date" in out
    assert json.loads(path.read_text()) == good
    out = run(["render", "--params", params, "--cache", cache, "--jobs", "1"]).output
    assert "[render] Chair: 5 computed" in out


def test_a_damaged_manifest_is_rebuilt_by_a_partial_ingest_too(tmp_path, run, params_file):
    cache = tmp_path / "cache"
    run(["ingest", "--params", params_file, "--cache", cache])
    path = cache / "ingest" / "Chair.zarr" / "manifest.json"
    good = json.loads(path.read_text())
    path.write_text("[")
    run(["ingest", "--params", params_file, "--cache", cache, "--objects", "0001"])
    assert json.loads(path.read_text()) == good  # the objects it did not look at are back in


def test_a_garbage_failures_file_is_replaced(tmp_path, run, params_file):
    cache = tmp_path / "cache"
    run(["ingest", "--params", params_file, "--cache", cache])
    run(["render", "--params", params_file, "--cache", cache])
    path = cache / "render" / "Chair.zarr" / "failures.json"
    for junk in (b"garbage{", b"\xff\xfe", b"[1]"):
        path.write_bytes(junk)
        out = run(["render", "--params", params_file, "--cache", cache]).output
        assert "[render] Chair: 0 computed, 5 up to date, 0 failed" in out
        assert json.loads(path.read_text())["failed"] == []


@pytest.mark.parametrize("kind", ["folder", "broken link", "bad yaml", "binary"])
def test_a_bad_splits_file_is_exit_2_naming_it(tmp_path, invoke, params_file, kind):
    root = tmp_path / "shapes"
    root.mkdir()
    (root / "a.ply").write_text(
        "ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nproperty float y\nproperty float z\nend_header\n0 0 0\n1 0 0\n0 1 0\n"
    )
    splits = root / "splits.yaml"
    {
        "folder": lambda: splits.mkdir(),
        "broken link": lambda: splits.symlink_to(tmp_path / "nowhere.yaml"),
        "bad yaml": lambda: splits.write_text("a: [1\n"),
        "binary": lambda: splits.write_bytes(b"\xff\xfe\x00"),
    }[kind]()
    res = invoke(
        ["ingest", "--params", params_file, "--cache", tmp_path / "cache", "--source", "files", "--root", root, "--category", "Chair"]
    )
    assert res.exit_code == 2 and str(splits) in one_line_error(res)
    assert not (tmp_path / "cache").exists()


CACHE_COMMANDS = sorted(n for n in COMMANDS if any(p.name == "cache" for p in command(n).params))


def test_every_command_with_a_cache_option_checks_it_first(tmp_path, invoke, params_file, monkeypatch):
    """train, evaluate, export, report, predict, adapt-detector define their own --cache: a file
    given there is exit 2 naming it, like for the per-object stages, and nothing is written."""
    monkeypatch.chdir(tmp_path)
    assert {"train", "evaluate", "export", "report", "predict", "adapt-detector", "render"} <= set(CACHE_COMMANDS)
    (tmp_path / "s.ply").write_text("ply\n")  # never read: the bad --cache stops the command first
    for name in CACHE_COMMANDS:
        extra = ["s.ply", "--category", "Chair", "--model-dir", "m"] if name == "predict" else []
        res = invoke([name, "--cache", "params.yaml", *extra, "--params", params_file])
        line = one_line_error(res)
        assert res.exit_code == 2 and "--cache" in line and "is a file" in line, (name, line)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml", "s.ply"]
