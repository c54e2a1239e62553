"""Per-box 2D masks (DESIGN §6): ``sam`` (segment-anything), ``box`` (rectangles, PartSLIP),
``oracle`` (SIMULATED SAM from rendered ground truth, for tests and comparisons) and ``pixels``
(SIMULATED SAM from a ground-truth-free over-segmentation of the render). All maskers share
``masks_for_object(images, det, embeddings=None) -> (masks (B,H,W) bool, embeddings)``."""
