"""Knobs of the ``pixels`` simulated detector, apart from its code so configs can read them cheaply.

Where its boxes go is decided by the proposal knobs of
:class:`pipeline.detect.oracle_params.OracleDetectorParams` (p_max, area_scale, jitter,
fp_rate, fp_size, whole_object_prob, min_box_px); everything it says about a box comes from
these knobs and the rendered pixels.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PixelDetectorParams:
    """Feature extractor, few-shot classifier and output rule of the pixels detector."""

    ring: float = 0.5
    """Surround ring of the box descriptor: the box grown by this fraction of its width/height on each side, minus the box."""
    sigma: float | None = None
    """Smoothing width (pixels) that fills the gaps between rendered points before gradients are taken; null: adapted to the splat density."""
    l2: float = 0.01
    """L2 penalty of the few-shot part classifier (multinomial logistic regression on standardised descriptors)."""
    steps: int = 150
    """Full-batch Adam steps of the classifier fit (fixed, so the fit depends only on the few-shot data)."""
    lr: float = 0.1
    """Adam step size of the classifier fit."""
    temperature: float = 1.0
    """Softmax temperature of the classifier's probabilities (> 1: less confident scores)."""
    hidden: int = 512
    """Fixed random ReLU units (seeded by feat_seed) appended to the classifier's input (0: linear on the descriptor)."""
    match_iou: float = 0.5
    """Training: a few-shot proposal whose IoU with a ground-truth part box reaches this is an example of that part, else of background."""
    background_per_view: int = 4
    """Training: extra random boxes per few-shot view (inside the silhouette), labelled like proposals, so background is well represented."""
    drop_background: bool = False
    """Drop boxes whose most probable class is background. Off by default: the proposals already stand for a detector's output after its score threshold (their misses and false positives are calibrated), so dropping would count misses twice."""
    feat_seed: int = 20240918
    """Seed of the fixed random projection descriptor -> feature (run-level, not per object)."""

    def feature_params(self):
        from .pixel_features import PixelFeatureParams

        return PixelFeatureParams(ring=self.ring, sigma=self.sigma)

    def classifier_params(self):
        from .pixel_classifier import PixelClassifierParams

        return PixelClassifierParams(
            l2=self.l2, steps=self.steps, lr=self.lr, temperature=self.temperature, hidden=self.hidden, seed=self.feat_seed
        )
