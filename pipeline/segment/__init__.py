"""Per-box 2D masks (DESIGN §6): ``sam`` (segment-anything), ``box`` (rectangles, PartSLIP),
``oracle`` (SIMULATED SAM from rendered ground truth, for tests and comparisons) and ``pixels``
(SIMULATED SAM from a ground-truth-free over-segmentation of the render). Each has its own
entry point (``masks_for_object`` for sam, ``box_masks``, ``oracle_masks``, ``pixel_masks``);
all return one (H,W) bool mask per box, row b for box b."""
