"""``partstad params``: every setting with its resolved value, type and documentation."""
from __future__ import annotations

import click


def _rows(model: type, prefix: str, values: object):
    from pydantic import BaseModel

    for name, info in model.model_fields.items():
        value = getattr(values, name)
        key = f"{prefix}{name}"
        if isinstance(value, BaseModel):
            doc = info.description or (type(value).__doc__ or "").strip().splitlines()[0] if (info.description or type(value).__doc__) else ""
            if doc:
                yield key, "", doc
            yield from _rows(type(value), key + ".", value)
        else:
            yield key, repr(value), (info.description or "")


@click.command()
@click.option("--params", "params_path", default="params.yaml", show_default=True, help="YAML file to resolve (missing keys take their defaults).")
@click.option("--defaults", is_flag=True, help="Show the defaults, ignoring any params file.")
def params(params_path: str, defaults: bool) -> None:
    """Validate params.yaml and print every setting with its value and meaning."""
    from stages.common import load_params
    from stages.config import PipelineConfig, config_hash

    cfg = PipelineConfig() if defaults else load_params(params_path)
    for key, value, doc in _rows(PipelineConfig, "", cfg):
        click.echo(f"{key:34s} {value:24s} {doc}" if value else f"{key:34s} {'':24s} # {doc}")
    click.echo(f"params hash {config_hash(cfg)}")
