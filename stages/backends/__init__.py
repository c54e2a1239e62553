"""Backend registries: one object per detector, masker and input source.

Why: a backend used to be a string compared in a dozen modules (work function, preflight,
cache key, GPU resources, doctor, provenance, dvc.yaml deps); forgetting one of them silently
left, say, a detector's weights out of its cache key. Now each backend is one object that owns
all of that (:class:`stages.backends.base.Backend`), and the stages look it up by name:
:data:`stages.backends.detectors.DETECTORS`, :data:`stages.backends.maskers.MASKERS`,
:data:`stages.backends.sources.SOURCES`. This package file imports nothing, so a stage's code
hash (stages/keys.py) covers only the registry it imports.
"""
