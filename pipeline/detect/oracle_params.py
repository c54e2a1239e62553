"""Knobs of the simulated detector, apart from its code so configs can read them cheaply."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OracleDetectorParams:
    """Noise model of the simulated detector (all defaults chosen to look GLIP-like)."""

    p_max: float = 0.9
    """Detection probability of a part that is large in the view."""
    area_scale: float = 0.02
    """Part area, as a fraction of the object's silhouette in the view, at which the detection
    probability is ``p_max * (1 - 1/e)``: p = p_max * (1 - exp(-area_frac / area_scale))."""
    jitter: float = 0.05
    """Std of the Gaussian offset of each box edge, as a fraction of the box width (x edges)
    or height (y edges)."""
    confusion: float = 0.1
    """Probability that a detected part gets the label of another (uniformly chosen) part of
    the category. No effect for one-part categories."""
    confused_confidence: float = 0.6
    """Multiplier of the score's quality term for confused labels (wrong labels score lower)."""
    fp_rate: float = 0.5
    """Mean (Poisson) number of false-positive boxes per view that shows the object."""
    fp_size: tuple[float, float] = (0.1, 0.5)
    """Range (uniform) of false-positive box sides, as fractions of the silhouette box sides."""
    whole_object_prob: float = 0.1
    """Per-view probability of an extra box around the whole silhouette with a random label."""
    score_threshold: float = 0.5
    """Scores lie in (score_threshold, 1], like GLIP after its ``score > 0.5`` filter."""
    score_noise: float = 0.1
    """Std of the Gaussian noise added to the quality term of the score."""
    min_box_px: float = 2.0
    """Boxes narrower or shorter than this many pixels (after jitter and clipping) are dropped."""
    max_per_view: int = 100
    """At most this many boxes per view (highest scores kept), like GLIP."""
    feat_dim: int = 256
    """Dimension D of the per-box feature (GLIP's FPN features are 256-D)."""
    feat_noise: float = 2.0
    """Std of Gaussian noise added to every feature entry. A linear read-out of a descriptor
    term has noise of about feat_noise / sqrt(feat_dim)."""
    informativeness: float = 1.0
    """How much the box feature tells about box quality, in [0, 1]. The feature describes a box
    by its predicted label, its view and two partial quality channels: a noisy objectness term
    (score-like, see ``objectness_noise``) and the appearance of what the box really covers
    (the fraction of its pixels on each ground-truth part label, unlabelled surface and
    background). Each channel is ``a * real + (1 - a) * random`` with a = informativeness and
    a random value drawn independently of the box, so 0 makes the feature statistically
    independent of box quality and 1 passes both channels unmixed. No correctness flag (GT IoU,
    false positive, confused label, whole-object box) ever enters the feature directly."""
    objectness_noise: float = 0.15
    """Std of the Gaussian noise of the feature's objectness channel around the box's quality
    term (drawn independently of the score's noise)."""
    feat_seed: int = 20240917
    """Seed of the fixed random projection descriptor -> feature (run-level, not per object)."""
    max_parts: int = 8
    """Length of the label one-hot and of the appearance histogram in the descriptor (PartNetE
    has at most 6 parts)."""
    max_views: int = 16
    """Length of the view one-hot in the descriptor."""
