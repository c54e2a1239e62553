"""The stage table: every ``partstad`` command and pipeline stage, one row each, in run order.

Why one table: the stage graph used to be written four times (key graph, import-partstad's
store list, dvc.yaml generator, CLI command list) plus lists in tests, with nothing making
them agree. Now each of those is derived from :data:`TABLE`:

- ``stages/keys.py`` STAGES (the key graph): rows with ``scope == "object"``, their
  ``upstream`` and ``sections``;
- ``stages/import_partstad.py``: the stores of the ``import_partstad`` row's ``writes``;
- ``tools/sync_dvc_deps.py`` (dvc.yaml): rows with a :class:`Dvc` part; a stage's data deps
  are the outs of the stages it ``reads`` plus ``Dvc.extra_deps``;
- ``stages/cli.py``: the command verbs, modules and help lines of every row;
- tests: :func:`chain` and :func:`names`. ``tests/stages/test_stage_table.py`` checks the
  lists that cannot be derived (and that the table itself is consistent).

Only plain data here (no imports of stage modules): ``partstad --help`` and the key code
read it without paying for torch, zarr or dask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from stages.report_studies import STUDY_FILES, STUDY_IMAGES

#: object: one Zarr group per object under cache/<stage>/<Category>.zarr, keyed by
#: stages/keys.py; category: one result per category (models, metrics); run: one result for
#: all categories; tool: a command outside the stage graph (it may still write stores).
Scope = Literal["object", "category", "run", "tool"]
CATEGORY = "{category}"


@dataclass(frozen=True)
class Dvc:
    """What dvc.yaml says about a stage beyond what the row already implies.

    ``params`` None means the row's ``sections``; code deps come from the import graph and
    data deps from the outs of the stages the row ``reads`` (then ``extra_deps``).
    """

    params: tuple[str, ...] | None = None
    extra_deps: tuple[str, ...] = ()
    outs: tuple[str, ...] = ()  # those under cache/ are persist: true
    metrics: tuple[str, ...] = ()
    plots: tuple[tuple[str, str, str], ...] = ()  # (path, x, y)
    category_args: bool = False  # the cmd names every category of params (--category C ...)
    comment: str = ""


@dataclass(frozen=True)
class StageRow:
    """One command: where it lives, what it reads, what enters its keys, what DVC tracks."""

    name: str  # stage name: cache/<name>/, dvc.yaml stage, key graph node
    command: str  # the `partstad <command>` verb
    help: str  # one line for `partstad --help`
    scope: Scope
    upstream: tuple[str, ...] = ()  # object stages whose current keys enter this stage's keys
    sections: tuple[str, ...] = ()  # config sections whose key-relevant fields enter its keys
    reads: tuple[str, ...] = ()  # stages whose outputs it reads (its dvc.yaml data deps)
    writes: tuple[str, ...] = ()  # object stores a tool writes in their place (import-partstad)
    module_name: str = ""  # stages.<module_name>, default the stage name
    function: str = ""  # the click command object in that module, default the stage name
    dvc: Dvc | None = None

    @property
    def module(self) -> str:
        return f"stages.{self.module_name or self.name}"

    @property
    def attr(self) -> str:
        return self.function or self.name


def _cache(stage: str) -> str:
    return f"cache/{stage}/{CATEGORY}.zarr"


TABLE: tuple[StageRow, ...] = (
    StageRow(
        "ingest",
        "ingest",
        "Read (or generate) labelled point clouds into the cache.",
        "object",
        sections=("data",),
        dvc=Dvc(
            outs=(_cache("ingest"),),
            category_args=True,
            comment=(
                "ingest names the categories of params on its command line: without --category it would\n"
                "read every category found under a partnete/mobility data.root, not only those listed here."
            ),
        ),
    ),
    StageRow(
        "render",
        "render",
        "Render each point cloud from the configured views.",
        "object",
        upstream=("ingest",),
        sections=("render",),
        reads=("ingest",),
        dvc=Dvc(outs=(_cache("render"),)),
    ),
    StageRow(
        "visibility",
        "visibility",
        "Project points into every view; mark visible ones.",
        "object",
        upstream=("ingest", "render"),
        sections=("render", "visibility"),
        reads=("ingest", "render"),
        dvc=Dvc(outs=(_cache("visibility"),)),
    ),
    StageRow(
        "superpoints",
        "superpoints",
        "Partition each cloud into superpoints.",
        "object",
        upstream=("ingest",),
        sections=("superpoints",),
        reads=("ingest",),
        dvc=Dvc(outs=(_cache("superpoints"),)),
    ),
    StageRow(
        "detect",
        "detect",
        "Detect part boxes in every view (simulated or Grounding DINO).",
        "object",
        upstream=("ingest", "render"),
        sections=("detect",),
        reads=("ingest", "render"),
        dvc=Dvc(params=("detect", "adapt.enabled", "adapt.out_dir"), outs=(_cache("detect"),)),
    ),
    StageRow(
        "adapt_detector",
        "adapt-detector",
        "Fine-tune Grounding DINO on the few-shot renders (optional).",
        "category",
        sections=("adapt",),
        reads=("ingest", "render"),
        dvc=Dvc(
            params=("adapt", "detect.backend", "detect.weights_dir", "detect.max_per_view"),
            outs=(f"models/adapt/{CATEGORY}", f"metrics/adapt/{CATEGORY}.json"),  # per-epoch detail: not a DVC metric
            comment=(
                "Optional few-shot fine-tuning of Grounding DINO (adapt.enabled). A leaf here on purpose:\n"
                'the demo\'s detector is simulated, so the stage only writes a "skipped" marker (fast). With\n'
                "real weights run `dvc repro adapt_detector` before detect (see README)."
            ),
        ),
    ),
    StageRow(
        "segment",
        "segment",
        "Turn every box into a mask (SAM, box, or simulated SAM).",
        "object",
        upstream=("ingest", "render", "detect"),
        sections=("segment",),
        reads=("render", "detect"),
        dvc=Dvc(outs=(_cache("segment"),)),
    ),
    StageRow(
        "import_partstad",
        "import-partstad",
        "Import the original PartSTAD preprocessing outputs.",
        "tool",
        writes=("ingest", "render", "visibility", "superpoints", "detect", "segment"),
    ),
    StageRow(
        "lift",
        "lift",
        "Lift masks and boxes onto superpoints (sparse membership).",
        "object",
        upstream=("ingest", "render", "visibility", "superpoints", "detect", "segment"),
        sections=("lift",),
        reads=("visibility", "superpoints", "detect", "segment"),
        dvc=Dvc(outs=(_cache("lift"),)),
    ),
    StageRow(
        "train",
        "train",
        "Train the box-weight network of each category.",
        "category",
        sections=("train",),
        reads=("lift", "detect"),
        dvc=Dvc(
            outs=(f"models/{CATEGORY}", f"metrics/train/{CATEGORY}.json"),  # per-epoch detail: not a DVC metric
            plots=((f"plots/train/{CATEGORY}.csv", "epoch", "val_miou"),),
        ),
    ),
    StageRow(
        "evaluate",
        "evaluate",
        "Predict with every method; write labels and metrics.",
        "object",
        upstream=("ingest", "visibility", "detect", "lift"),
        sections=("evaluate", "lift"),
        reads=("train", "ingest", "visibility", "detect", "lift"),
        dvc=Dvc(
            # the full per-part results are a plain out; the metrics are the headline files
            # (pipeline/headline.py), small enough for `dvc metrics show` to fit a terminal
            outs=(_cache("evaluate"), f"metrics/evaluate/{CATEGORY}.json"),
            metrics=(f"metrics/headline/mIoU/{CATEGORY}.json", f"metrics/headline/mAP50/{CATEGORY}.json"),
        ),
    ),
    StageRow(
        "report",
        "report",
        "Write the HTML report and summary metrics.",
        "run",
        sections=("report",),
        dvc=Dvc(
            params=("categories", "report"),  # reads the metrics of the categories of params
            extra_deps=(
                "metrics/evaluate",
                "plots/train",
                *(f"docs/{name}" for name in (*STUDY_FILES, *STUDY_IMAGES)),
            ),
            outs=("reports/index.html", "metrics/summary.json"),
            metrics=("metrics/headline/mIoU/mean.json", "metrics/headline/mAP50/mean.json"),
        ),
    ),
    StageRow("export", "export", "Export predicted labels as PLY, .npy, GLB and a JSON sidecar.", "tool"),
    StageRow("predict", "predict", "Part labels for your own shapes with a trained model, in one command.", "tool"),
    StageRow("params", "params", "Show every setting with its default, type and doc.", "tool", module_name="params_cmd"),
    StageRow("doctor", "doctor", "Check packages, the backends that will run and whether the weights load.", "tool"),
    StageRow("experiments", "experiments", "DVC experiments at a glance: changed params and headline metrics.", "tool"),
)

ROWS: dict[str, StageRow] = {r.name: r for r in TABLE}
BY_COMMAND: dict[str, StageRow] = {r.command: r for r in TABLE}


def dvc_params(name: str) -> tuple[str, ...]:
    """The config sections the stage's dvc.yaml entry lists as params (``categories`` aside).

    What a DVC-tracked artefact records as its settings hash must depend on these and nothing
    else: DVC re-runs the stage only when they (or its deps) change, so a hash of the whole
    config would leave the committed outputs stale when an unrelated section changes."""
    row = ROWS[name]
    params = row.dvc.params if row.dvc is not None and row.dvc.params is not None else row.sections
    return tuple(p for p in params if p != "categories")


def names(scope: Scope | None = None, *, dvc: bool | None = None) -> tuple[str, ...]:
    """Stage names in run order, optionally only one scope / only those in dvc.yaml."""
    return tuple(r.name for r in TABLE if (scope is None or r.scope == scope) and (dvc is None or (r.dvc is not None) == dvc))


def chain(*targets: str) -> tuple[str, ...]:
    """The stages that ``targets`` need (their upstream closure, targets included), in run order.

    ``chain("lift")`` is what a test runs to get lift results; ``chain("evaluate")`` includes
    train (evaluate reads its model).
    """
    need: set[str] = set()
    todo = list(targets)
    while todo:
        s = todo.pop()
        if s in need:
            continue
        if s not in ROWS:
            raise KeyError(f"no stage {s!r} in the stage table")
        need.add(s)
        todo.extend(ROWS[s].upstream + ROWS[s].reads)
    return tuple(r.name for r in TABLE if r.name in need)


def _outs(row: StageRow) -> tuple[str, ...]:
    """The outs a reading stage depends on: not the per-category records under metrics/
    (detail kept for people and the report, no input of the next stage)."""
    return tuple(o for o in row.dvc.outs if not o.startswith("metrics/")) if row.dvc is not None else ()


def dvc_deps(row: StageRow) -> tuple[str, ...]:
    """The data deps of a dvc.yaml stage: the outs of the stages it reads, then its extra deps."""
    assert row.dvc is not None
    outs = tuple(o for s in row.reads for o in _outs(ROWS[s]))
    return outs + row.dvc.extra_deps
