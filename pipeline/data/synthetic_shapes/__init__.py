"""Per-category shape builders of the synthetic generator (:mod:`pipeline.data.synthetic`).

Each category module (`chair`, `table`, `storage_furniture`, `bottle`, `kettle`, `lamp`)
has one entry point, ``build(rng, index) -> list[_Part]``: the part meshes of shape `index`,
each with its PartNetE part name (or None for unlabelled structure) and its material, drawn
from `rng` only. `common` holds the materials and the part record, `fronts` the drawer/door
fronts and handles shared by tables and storage furniture; mesh primitives come from
:mod:`pipeline.data._shapes`. Sampling points, colours and labels is done by
:mod:`pipeline.data.synthetic`, the public entry point.
"""
