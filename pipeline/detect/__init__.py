"""2D part detectors behind one interface (DESIGN §6).

Backends: ``oracle`` (SIMULATED, from rendered ground truth), ``imported`` (original PartSTAD
preprocessing outputs), ``grounding_dino`` (real, transformers, local weights; imported
lazily because transformers is slow to import).
"""
from .types import Detections, Detector, ViewDetections, clip_boxes, detect_object

__all__ = ["Detections", "Detector", "ViewDetections", "clip_boxes", "detect_object"]
