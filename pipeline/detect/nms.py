"""Greedy non-maximum suppression (numpy and torch front-ends), no torchvision needed."""

from __future__ import annotations

import numpy as np
import torch

from pipeline.boxes import box_iou_matrix

#: kept for callers that import it from here; the implementation is pipeline.boxes
box_iou_np = box_iou_matrix


def nms_torch(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS: keep a box unless a higher-scored kept box overlaps it with IoU > threshold.

    Returns the kept indices (int64) in decreasing score order, like torchvision.ops.nms.
    """
    n = boxes.shape[0]
    if n == 0:
        return torch.zeros(0, dtype=torch.int64, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    xyxy = boxes[order].detach().cpu().numpy()
    iou = box_iou_matrix(xyxy, xyxy)
    suppressed = np.zeros(n, dtype=bool)
    keep = []
    for i in range(n):
        if suppressed[i]:
            continue
        keep.append(i)
        suppressed |= iou[i] > iou_threshold
    return order[torch.as_tensor(keep, dtype=torch.int64, device=order.device)]


def batched_nms_torch(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Class-wise NMS: boxes with different ``idxs`` never suppress each other."""
    if boxes.shape[0] == 0:
        return torch.zeros(0, dtype=torch.int64, device=boxes.device)
    span = (boxes.max() - boxes.min()).item() + 1.0
    shifted = boxes.float() - boxes.min().float() + idxs.to(torch.float32)[:, None] * span
    return nms_torch(shifted, scores, iou_threshold)


def batched_nms_np(xyxy: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou_threshold: float) -> np.ndarray:
    """numpy front-end of :func:`batched_nms_torch`; returns kept indices by decreasing score."""
    keep = batched_nms_torch(
        torch.as_tensor(np.asarray(xyxy, dtype=np.float32)),
        torch.as_tensor(np.asarray(scores, dtype=np.float32)),
        torch.as_tensor(np.asarray(labels, dtype=np.int64)),
        iou_threshold,
    )
    return keep.numpy()
