"""2D part detectors behind one interface (DESIGN §6).

Backends: ``oracle`` (SIMULATED ground-truth oracle: labels, scores and features from the
rendered ground truth; for tests and comparisons), ``pixels`` (SIMULATED from the rendered
image: ground-truth-placed proposals, features/labels/scores from pixels and a few-shot
classifier), ``imported`` (original PartSTAD
preprocessing outputs), ``grounding_dino`` (real, transformers, local weights; imported
lazily because transformers is slow to import).
"""

from .types import Detections, Detector, ViewDetections, clip_boxes, detect_object

__all__ = ["Detections", "Detector", "ViewDetections", "clip_boxes", "detect_object"]
