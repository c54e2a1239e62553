"""Per-box 2D masks (DESIGN §6): ``sam`` (segment-anything), ``box`` (rectangles, PartSLIP)
and ``oracle`` (SIMULATED SAM from rendered ground truth). All maskers share
``masks_for_object(images, det, embeddings=None) -> (masks (B,H,W) bool, embeddings)``."""
