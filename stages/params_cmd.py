"""``partstad params``: every setting with its resolved value, type and documentation."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from pydantic import BaseModel


def _rows(model: type[BaseModel], prefix: str, values: object) -> Iterator[tuple[str, str, str]]:
    from pydantic import BaseModel

    for name, info in model.model_fields.items():
        value = getattr(values, name)
        key = f"{prefix}{name}"
        if isinstance(value, BaseModel):
            doc = (
                info.description or (type(value).__doc__ or "").strip().splitlines()[0] if (info.description or type(value).__doc__) else ""
            )
            if doc:
                yield key, "", doc
            yield from _rows(type(value), key + ".", value)
        else:
            yield key, repr(value), (info.description or "")


@click.command()
@click.option(
    "--params", "params_path", default="params.yaml", show_default=True, help="YAML file to resolve (missing keys take their defaults)."
)
@click.option("--defaults", is_flag=True, help="Show the defaults, ignoring any params file.")
@click.option(
    "-S", "--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a setting (dotted key, YAML value; repeatable)."
)
def params(params_path: str, defaults: bool, overrides: tuple[str, ...]) -> None:
    """Validate params.yaml and print every setting with its value and meaning."""
    from stages.common import ParamsError, load_params
    from stages.config import ConfigError, PipelineConfig, apply_overrides, config_hash, parse_config

    if defaults:
        try:
            cfg = parse_config(apply_overrides({}, overrides), "packaged defaults")
        except ConfigError as exc:
            raise ParamsError(str(exc)) from None
    else:
        cfg = load_params(params_path, overrides)
    for key, value, doc in _rows(PipelineConfig, "", cfg):
        click.echo(f"{key:34s} {value:24s} {doc}" if value else f"{key:34s} {'':24s} # {doc}")
    click.echo(f"params hash {config_hash(cfg)}")
