"""``partstad``: one click verb per pipeline stage (the same verbs dvc.yaml runs)."""
from __future__ import annotations

import click

from stages.common import setup_logging


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def main(verbose: bool) -> None:
    """Few-shot 3D part segmentation (PartSTAD) as a cache-driven batch pipeline.

    Stages, in order: ingest -> render -> visibility -> superpoints -> detect -> segment
    -> lift -> train -> evaluate -> report. Each reads its inputs from the Zarr cache
    (cache/<stage>/<Category>.zarr), skips objects that are up to date, and records bad
    objects in failures.json. Run them all with `dvc repro`.
    """
    setup_logging(verbose)


def _register() -> None:
    from stages import ingest

    main.add_command(ingest.ingest)
    for name in ["render", "visibility", "superpoints", "detect", "segment", "import_partstad", "lift", "train", "evaluate", "report", "export"]:
        try:
            mod = __import__(f"stages.{name}", fromlist=[name])
        except ModuleNotFoundError as exc:
            if exc.name == f"stages.{name}":
                continue
            raise
        main.add_command(getattr(mod, name))


_register()

if __name__ == "__main__":
    main()
