"""Knobs of the ``pixels`` simulated SAM, apart from its code so configs can read them cheaply."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PixelSamParams:
    """Over-segmentation and prompt rule of the pixels SAM."""

    sigma: float | None = None
    """Smoothing width (pixels) that fills the gaps between rendered points; None: adapted to the splat density."""
    depth_weight: float = 1.0
    """Weight of depth (normalised over the object, 0..1) relative to colour (RGB in 0..1) in the superpixels, the edge map and the depth step across region borders."""
    n_superpixels: int = 300
    """About this many superpixels over the object before merging."""
    compactness: float = 0.2
    """Superpixel compactness: a pixel one grid spacing away weighs like this colour difference (RGB in 0..1)."""
    iterations: int = 3
    """Superpixel refinement rounds."""
    merge_scale: float = 10.0
    """Felzenszwalb scale k for an object covering 3000 surface pixels (scaled with the object's area in the view): larger merges more."""
    min_region: int = 6
    """Regions smaller than this many pixels (for an object of 3000 surface pixels, scaled like merge_scale) join their closest neighbour."""
    inside: float = 0.5
    """A segment joins a box's mask when at least this fraction of its pixels lies in the box."""
    min_cover: float = 0.2
    """Fallback when the segments inside cover less than this fraction of the box's surface."""
