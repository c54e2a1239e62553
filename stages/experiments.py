"""``partstad experiments``: DVC experiments at a glance.

``dvc exp show`` prints every param, every dependency hash and every headline file as a
column (thousands of characters wide on this project). This command reads the same table
(``dvc.api.exp_show``) and prints one row per experiment with only the params that differ
between the rows and one headline metric per method (``metrics/headline``), so a sweep made
with ``dvc exp run -S ...`` reads in a terminal.
"""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from pipeline.headline import HEADLINE_METRICS, experiments_table, format_table
from stages.common import params_option


@click.command("experiments")
@click.option(
    "--metric", type=click.Choice(list(HEADLINE_METRICS)), default="mIoU", show_default=True, help="Headline metric shown per method."
)
@click.option("--category", default="mean", show_default=True, help="A category of params.yaml, or mean (over categories).")
@click.option("-n", "--num", type=click.IntRange(min=1), default=1, show_default=True, help="Commits of the branch to show, from HEAD.")
@params_option
def experiments(metric: str, category: str, num: int, params_path: str) -> None:
    """DVC experiments: changed params and the headline metric per method (the repository
    is the directory of --params)."""
    params_file = Path(params_path)
    repo = params_file.parent
    if not (repo / "dvc.yaml").is_file() or not params_file.is_file():
        raise click.UsageError(f"{repo.resolve()} is not this project's DVC repository (no dvc.yaml / params.yaml)")
    headline = repo / "metrics" / "headline" / metric / f"{category}.json"
    if category != "mean" and not headline.is_file():
        raise click.BadParameter(
            f"no headline file {headline} (run `dvc repro` first, or check the category name)", param_hint="--category"
        )
    try:
        sections = set((yaml.safe_load(params_file.read_text()) or {}).keys())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise click.UsageError(f"{params_file}: not valid YAML{where} ({getattr(exc, 'problem', None) or 'parse error'})") from None
    import dvc.api
    from dvc.exceptions import DvcException
    from dvc.scm import SCMError

    try:
        records = dvc.api.exp_show(repo=str(repo), num=num)
    except SCMError as exc:
        raise click.UsageError(
            f"{repo.resolve()}: dvc could not read its git history ({exc}); experiments live in a git repository with at least one commit"
        ) from None
    except DvcException as exc:
        raise click.ClickException(f"dvc could not list the experiments of {repo.resolve()}: {exc}") from None
    click.echo(format_table(experiments_table(records, sections, metric, category)))
    click.echo(f"({metric} %, {category}; every column: `dvc exp show`)")
