"""Progress in a log (not a terminal): timed lines with count, rate and ETA; a bar on a terminal."""

from __future__ import annotations

import io

from stages.progress import Progress, track


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_a_log_gets_the_first_line_then_one_per_interval_then_the_last():
    clock, out = FakeClock(), io.StringIO()
    bar = Progress(10, "segment Chair", stream=out, terminal=False, interval=10.0, clock=clock)
    for _ in range(10):
        clock.t += 3.0  # 3 s per object
        bar.update(1)
    bar.close()
    lines = out.getvalue().splitlines()
    # after object 1 (t=3), then t>=13 (object 5 at 15), t>=25 (object 9 at 27), and the last one (object 10)
    assert [ln.split(":")[1].split("(")[0].strip() for ln in lines] == ["1/10 obj", "5/10 obj", "9/10 obj", "10/10 obj"]
    assert lines[0] == "segment Chair: 1/10 obj (10%), 3.0 s elapsed, 3.00 s/obj, ETA 27 s"
    assert "ETA" not in lines[-1] and lines[-1].startswith("segment Chair: 10/10 obj (100%), 30 s elapsed")


def test_stopping_early_says_where_it_stopped():
    clock, out = FakeClock(), io.StringIO()
    with Progress(100, "render Mug", stream=out, terminal=False, interval=60.0, clock=clock) as bar:
        for _ in range(7):
            clock.t += 1.0
            bar.update(1)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[-1].startswith("render Mug: 7/100 obj (7%), 7.0 s elapsed, 1.00 s/obj, ETA 1 min 33 s")


def test_postfix_and_long_durations_are_readable():
    clock, out = FakeClock(), io.StringIO()
    bar = Progress(3, "train Chair partstad", unit="ep", stream=out, terminal=False, clock=clock)
    clock.t = 4000.0
    bar.set_postfix(loss="0.123")
    bar.update(1)
    assert out.getvalue().strip() == "train Chair partstad: 1/3 ep (33%), 1 h 06 min elapsed, 1 h 06 min/ep, ETA 2 h 13 min, loss 0.123"


def test_track_yields_every_item_and_reports_them():
    out = io.StringIO()
    assert list(track(["a", "b", "c"], "detect Kettle", stream=out, terminal=False)) == ["a", "b", "c"]
    assert out.getvalue().splitlines()[-1].startswith("detect Kettle: 3/3 obj (100%)")


def test_a_terminal_gets_a_bar_not_lines():
    out = io.StringIO()
    bar = Progress(2, "lift Chair", stream=out, terminal=True)
    bar.update(2)
    bar.close()
    assert "lift Chair: 2/2 obj" not in out.getvalue()  # tqdm's format, not the log line
    assert "lift Chair:   0%|" in out.getvalue() and "\r" in out.getvalue()


def test_a_stage_writes_progress_lines_into_a_captured_log(tmp_path, run, write_params):
    """Under CliRunner (as under `dvc repro` in CI) stderr is not a terminal: plain lines, no bar."""
    params = write_params(tmp_path)
    cache = tmp_path / "cache"
    run(["ingest", "--params", params, "--cache", cache])
    out = run(["render", "--params", params, "--cache", cache]).output
    lines = [ln for ln in out.splitlines() if ln.startswith("render Chair: ")]
    assert lines, out
    n = int(lines[-1].split("/")[0].rsplit(" ", 1)[1])
    assert n >= 1 and lines[-1].startswith(f"render Chair: {n}/{n} obj (100%)"), lines
    assert "\r" not in out and "it/s" not in out and "obj/s" not in out
    # and under the threads scheduler (dask): the same count
    out = run(["render", "--params", params, "--cache", cache, "--force", "--scheduler", "threads"]).output
    assert [ln for ln in out.splitlines() if ln.startswith(f"render Chair: {n}/{n} obj (100%)")], out
