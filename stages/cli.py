"""``partstad``: one click verb per pipeline stage (the same verbs dvc.yaml runs).

Commands are imported only when run, so `partstad --help` and a quick command do not pay
for torch, dask or zarr imports they do not need.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version

import click

from stages.cpu_numerics import PINNED_COMMANDS, pin_portable_torch_numerics
from stages.stage_table import TABLE

#: verb -> (module, function, one-line help shown by `partstad --help`), from the stage table
COMMANDS: dict[str, tuple[str, str, str]] = {r.command: (r.module, r.attr, r.help) for r in TABLE}


class BadInputExit(click.ClickException):
    """An :class:`pipeline.errors.ObjectError` that stopped a whole command: exit 1 (bad data,
    not a bad command line)."""

    exit_code = 1


class LazyGroup(click.Group):
    """A click group that imports a command's module only when that command runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        if name in PINNED_COMMANDS:
            pin_portable_torch_numerics()
        return getattr(importlib.import_module(module), attr)

    def invoke(self, ctx: click.Context) -> object:
        """Bad input that escapes a command (a damaged side file read outside the per-object
        runner) is one line naming the file, exit 1, never a traceback."""
        from pipeline.errors import ObjectError

        try:
            return super().invoke(ctx)
        except ObjectError as exc:
            raise BadInputExit(str(exc)) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, help_) for name, (_, _, help_) in COMMANDS.items()])


def _version() -> str:
    try:
        return version("partstad-pipeline")
    except PackageNotFoundError:
        return "unknown"


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
@click.version_option(_version(), prog_name="partstad")
def main(verbose: bool) -> None:
    """Few-shot 3D part segmentation (PartSTAD) as a cache-driven batch pipeline.

    Stages, in order: ingest -> render -> visibility -> superpoints -> detect -> segment
    -> lift -> train -> evaluate -> report. Each reads its inputs from the Zarr cache
    (cache/<stage>/<Category>.zarr), skips objects that are up to date, and records bad
    objects in failures.json. Run them all with `dvc repro`. Exit codes: 0 done,
    1 some object failed or nothing matched, 2 invalid params or options.
    """
    import logging
    import sys

    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(message)s", stream=sys.stderr)


if __name__ == "__main__":
    main()
