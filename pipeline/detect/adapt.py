"""Few-shot adaptation of the open-vocabulary detector (PartSLIP's per-category fine-tuning).

PartSLIP fine-tunes GLIP per category on the renders of the 8 few-shot shapes (zero-shot
part detection on point-cloud renders is far weaker). Here the detector is Hugging Face
Grounding DINO, fine-tuned with the detection loss transformers ships (Hungarian matching,
focal token loss, L1 + GIoU box loss) on:

* one training image per rendered view of each few-shot shape,
* ground-truth part boxes projected from the rendered instance map (``pix2pt`` + per-point
  instance ids: the same projection the simulated detector uses, :mod:`.scene`),
* the category's part names as the prompt (:func:`.grounding_dino.make_prompt`), the class
  of a box being its part's phrase.

Which parameters train is a choice (:data:`TRAINABLE`): ``prompt`` (text projection only,
the analogue of PartSLIP's prompt tuning), ``heads`` (prompt + box/class heads of decoder and
encoder proposals) or ``all`` (the default: on the tiny random detector only ``all`` lowers the
box terms of the loss at lr 1e-4, ``heads`` needs ~1e-3, ``prompt`` never does;
benchmarks/bench_adapt_learning.py, docs/detector_weights.md). Validation = box AP50 per part on
held-out renders, decoded exactly as the detect stage does (:func:`.grounding_dino.decode_queries`);
the best epoch (epoch 0 = the weights before adaptation) is kept, ties on AP50 going to the lower
detection loss on the same views (:func:`fixed_views_loss`).

Everything here is computation over arrays and torch modules: no files, no cache.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .nms import box_iou_np
from .scene import instance_table, view_instances

log = logging.getLogger(__name__)

TRAINABLE = ("prompt", "heads", "all")
#: Token ids Grounding DINO's loss (``build_label_maps``) and text masks treat as phrase
#: delimiters: BERT-base [CLS], [SEP], ".", "?" (plus [PAD] = 0). A tokenizer whose ids
#: differ cannot be trained with the transformers loss (the phrases would not be found).
BERT_DELIMITERS = (101, 102, 1012, 1029, 0)


class AdaptDataError(ValueError):
    """The adaptation data set cannot be built (no shapes, no part visible anywhere...)."""


@dataclass
class AdaptSample:
    """One training/validation image: a rendered view and its ground-truth part boxes."""

    image: np.ndarray  # (H,W,3) uint8 RGB
    xyxy: np.ndarray  # (n,4) float32 pixel boxes [x0, y0, x1, y1)
    label: np.ndarray  # (n,) int64 part id (index in the category's part names)
    object_id: str = ""
    view: int = 0


# ----------------------------------------------------------------------------- data set
def view_gt_boxes(
    pix2pt_view: np.ndarray, point_inst: np.ndarray, inst_label: np.ndarray, min_box_px: float = 2.0
) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth part boxes of one view: (n,4) f32 xyxy pixels, (n,) int64 labels.

    One box per visible part instance (its tight pixel extent in the rendered instance map);
    boxes narrower or lower than ``min_box_px`` are dropped (a few stray pixels are no part
    a detector could be asked to find).
    """
    vi = view_instances(pix2pt_view, point_inst, inst_label)
    wh = vi.xyxy[:, 2:] - vi.xyxy[:, :2]
    ok = (wh >= min_box_px).all(1) if len(wh) else np.zeros(0, bool)
    return vi.xyxy[ok].astype(np.float32), vi.label[ok].astype(np.int64)


def object_samples(
    object_id: str, rgb: np.ndarray, pix2pt: np.ndarray, sem: np.ndarray, ins: np.ndarray, n_parts: int, min_box_px: float = 2.0
) -> tuple[list[AdaptSample], list[int]]:
    """The samples of one rendered object and the views skipped because no part is visible.

    rgb (V,H,W,3) u8, pix2pt (V,H,W) i32 (-1 background), sem (N,) part id or -1, ins (N,)
    instance id or -1.
    """
    rgb, pix2pt = np.asarray(rgb), np.asarray(pix2pt)
    if rgb.ndim != 4 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
        raise AdaptDataError(f"{object_id}: rgb must be (V,H,W,3) uint8, got {rgb.shape} {rgb.dtype}")
    if pix2pt.shape != rgb.shape[:3]:
        raise AdaptDataError(f"{object_id}: pix2pt {pix2pt.shape} does not match rgb {rgb.shape[:3]}")
    point_inst, inst_label = instance_table(sem, ins)
    if pix2pt.size and int(pix2pt.max()) >= point_inst.shape[0]:
        raise AdaptDataError(f"{object_id}: pix2pt refers to point {int(pix2pt.max())} but the object has {point_inst.shape[0]} points")
    if inst_label.size and int(inst_label.max()) >= n_parts:
        raise AdaptDataError(f"{object_id}: ground-truth label {int(inst_label.max())} outside the {n_parts} part names")
    samples, empty = [], []
    for v in range(rgb.shape[0]):
        xyxy, label = view_gt_boxes(pix2pt[v], point_inst, inst_label, min_box_px)
        if len(label) == 0:
            empty.append(v)
            continue
        samples.append(AdaptSample(rgb[v], xyxy, label, object_id, v))
    return samples, empty


def build_dataset(
    objects: Iterable[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    n_parts: int,
    min_box_px: float = 2.0,
    what: str = "training",
) -> list[AdaptSample]:
    """Samples of every (object_id, rgb, pix2pt, sem, ins); views without any part are skipped
    (logged). No object, or no part in any view, is an :class:`AdaptDataError`."""
    samples: list[AdaptSample] = []
    n_obj = 0
    for oid, rgb, pix2pt, sem, ins in objects:
        n_obj += 1
        s, empty = object_samples(oid, rgb, pix2pt, sem, ins, n_parts, min_box_px)
        if empty:
            log.info("adapt: %s views %s of %s show no part; skipped", what, empty, oid)
        samples.extend(s)
    if n_obj == 0:
        raise AdaptDataError(f"no {what} shapes to build the adaptation set from")
    if not samples:
        raise AdaptDataError(f"no part is visible in any view of the {n_obj} {what} shape(s); nothing to adapt on")
    return samples


def to_target(sample: AdaptSample) -> dict[str, np.ndarray]:
    """The transformers label dict of a sample: class ids and normalised (cx, cy, w, h) boxes."""
    H, W = sample.image.shape[:2]
    b = sample.xyxy.astype(np.float64)
    cxcywh = np.stack([(b[:, 0] + b[:, 2]) / 2 / W, (b[:, 1] + b[:, 3]) / 2 / H, (b[:, 2] - b[:, 0]) / W, (b[:, 3] - b[:, 1]) / H], 1)
    return {"class_labels": sample.label.astype(np.int64), "boxes": np.clip(cxcywh, 0.0, 1.0).astype(np.float32)}


# ----------------------------------------------------------------------------- metric
def average_precision(tp: np.ndarray, score: np.ndarray, n_gt: int) -> float:
    """All-point interpolated AP (VOC 2010+, COCO-style envelope) of ranked detections."""
    if n_gt == 0:
        return float("nan")
    if tp.size == 0:
        return 0.0
    order = np.argsort(-score, kind="stable")
    tp = tp[order].astype(np.float64)
    ctp, cfp = np.cumsum(tp), np.cumsum(1.0 - tp)
    recall = ctp / n_gt
    precision = ctp / np.maximum(ctp + cfp, 1e-12)
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    idx = np.flatnonzero(mrec[1:] != mrec[:-1])
    return float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))


def box_ap(
    dets: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    gts: Sequence[tuple[np.ndarray, np.ndarray]],
    n_classes: int,
    iou_thresh: float = 0.5,
) -> np.ndarray:
    """Per-class box AP at an IoU threshold over a set of images.

    dets[i] = (xyxy (n,4), label (n,), score (n,)) and gts[i] = (xyxy (m,4), label (m,)) of
    image i. Greedy matching by descending score within each image and class (each ground
    truth matched at most once; IoU >= ``iou_thresh``). Classes without any ground truth get
    NaN (leave them out of the mean with ``np.nanmean``).
    """
    if len(dets) != len(gts):
        raise ValueError(f"{len(dets)} detection sets for {len(gts)} images")
    tps: list[list[np.ndarray]] = [[] for _ in range(n_classes)]
    scores: list[list[np.ndarray]] = [[] for _ in range(n_classes)]
    n_gt = np.zeros(n_classes, np.int64)
    for (dx, dl, ds), (gx, gl) in zip(dets, gts):
        dx, dl, ds = np.asarray(dx, np.float64).reshape(-1, 4), np.asarray(dl).reshape(-1), np.asarray(ds, np.float64).reshape(-1)
        gx, gl = np.asarray(gx, np.float64).reshape(-1, 4), np.asarray(gl).reshape(-1)
        for c in range(n_classes):
            g = gx[gl == c]
            n_gt[c] += len(g)
            sel = np.flatnonzero(dl == c)
            if not sel.size:
                continue
            sel = sel[np.argsort(-ds[sel], kind="stable")]
            tp = np.zeros(sel.size, bool)
            if len(g):
                iou = box_iou_np(dx[sel], g)
                used = np.zeros(len(g), bool)
                for i in range(sel.size):
                    cand = np.where(used, -1.0, iou[i])
                    j = int(np.argmax(cand))
                    if cand[j] >= iou_thresh:
                        used[j] = True
                        tp[i] = True
            tps[c].append(tp)
            scores[c].append(ds[sel])
    out = np.full(n_classes, np.nan)
    for c in range(n_classes):
        tp = np.concatenate(tps[c]) if tps[c] else np.zeros(0, bool)
        sc = np.concatenate(scores[c]) if scores[c] else np.zeros(0)
        out[c] = average_precision(tp, sc, int(n_gt[c]))
    return out


# ----------------------------------------------------------------------------- model side
def trainable_parameters(model: Any, mode: str) -> list[str]:
    """Freeze everything except the ``mode`` group; returns the trainable parameter names.

    ``prompt``: the text projection (BERT features -> d_model), i.e. how the part names enter
    the model; ``heads``: prompt + the decoder's box heads and contrastive class heads, the
    encoder's proposal heads and output projection; ``all``: every parameter.
    """
    if mode not in TRAINABLE:
        raise ValueError(f"trainable must be one of {TRAINABLE}, got {mode!r}")
    prefixes = {
        "prompt": ("model.text_projection.",),
        "heads": (
            "model.text_projection.",
            "bbox_embed.",
            "class_embed.",
            "model.decoder.bbox_embed.",
            "model.encoder_output_bbox_embed.",
            "model.encoder_output_class_embed.",
            "model.enc_output.",
            "model.enc_output_norm.",
        ),
    }
    names = []
    for name, p in model.named_parameters():
        on = mode == "all" or name.startswith(prefixes[mode])
        p.requires_grad_(on)
        if on:
            names.append(name)
    if not names:
        raise ValueError(f"trainable={mode!r} selects no parameter of this model")
    return names


def check_prompt_phrases(input_ids: Sequence[int], n_parts: int, prompt: str) -> None:
    """The transformers loss must see exactly one phrase per part, in order (see BERT_DELIMITERS)."""
    groups, inside = 0, False
    for t in input_ids:
        if int(t) in BERT_DELIMITERS:
            inside = False
        elif not inside:
            groups += 1
            inside = True
    if groups != n_parts:
        raise AdaptDataError(
            f"the tokenizer splits prompt {prompt!r} into {groups} phrase(s) for {n_parts} parts: Grounding DINO's loss "
            f"finds phrases by BERT's token ids {BERT_DELIMITERS[:4]} ([CLS], [SEP], '.', '?'), so the tokenizer must use them"
        )


@dataclass
class AdaptParams:
    """Knobs of :func:`fine_tune` (the stage fills them from the ``adapt`` config section)."""

    epochs: int = 20
    batch_size: int = 4
    lr: float = 1e-4
    weight_decay: float = 1e-4
    grad_clip: float = 0.1
    trainable: str = "all"  # the group that learns boxes at lr 1e-4 (benchmarks/bench_adapt_learning.py)
    lr_schedule: str = "constant"  # constant | cosine (decay to 0 over all steps)
    seed: int = 0
    device: str = "cpu"
    eval_batch_size: int = 8
    #: validation decoding: score threshold (0 = rank every query), class-wise NMS IoU, cap per view
    eval_score_threshold: float = 0.0
    nms_iou: float = 0.6
    max_per_view: int = 100


@dataclass
class AdaptResult:
    """Training curve and the selected weights (trainable tensors only, on the CPU)."""

    curve: list[dict[str, Any]]
    best_epoch: int
    best_ap50: float
    best_state: dict[str, Any]
    trainable_names: list[str]
    seconds_train: float
    seconds_eval: float
    n_train: int
    n_val: int
    selection: str = "val"
    extra: dict[str, Any] = field(default_factory=dict)


def _batches(n: int, size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    idx = rng.permutation(n) if rng is not None else np.arange(n)
    return [idx[i : i + size] for i in range(0, n, size)]


def _encode(processor: Any, samples: Sequence[AdaptSample], text: str, device: Any) -> Any:
    from PIL import Image

    inputs = processor(images=[Image.fromarray(s.image) for s in samples], text=[text] * len(samples), return_tensors="pt")
    return inputs.to(device)


def predict(
    model: Any,
    processor: Any,
    images: Sequence[np.ndarray],
    part_names: Sequence[str],
    *,
    batch_size: int = 8,
    score_threshold: float = 0.0,
    nms_iou: float = 0.6,
    max_per_view: int = 100,
    device: Any = "cpu",
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Boxes per image, decoded as the detect stage decodes them (batched forward)."""
    import torch

    from .grounding_dino import decode_queries, prompt_for

    text, A = prompt_for(processor.tokenizer, part_names, int(model.config.max_text_len))
    was_training = model.training
    model.eval()
    out_all = []
    try:
        for sel in _batches(len(images), batch_size, None):
            batch = [AdaptSample(np.asarray(images[i]), np.zeros((0, 4), np.float32), np.zeros(0, np.int64)) for i in sel]
            inputs = _encode(processor, batch, text, device)
            with torch.inference_mode():
                out = model(**inputs)
            for k, s in enumerate(batch):
                H, W = s.image.shape[:2]
                out_all.append(
                    decode_queries(
                        out.logits[k], out.pred_boxes[k], out.last_hidden_state[k], A, H, W, score_threshold, nms_iou, max_per_view
                    )
                )
    finally:
        model.train(was_training)
    return out_all


def evaluate_ap50(
    model: Any, processor: Any, samples: Sequence[AdaptSample], part_names: Sequence[str], params: AdaptParams
) -> tuple[float, np.ndarray]:
    """(mean box AP50 over parts with ground truth, per-part AP50 (NaN = part never visible))."""
    preds = predict(
        model,
        processor,
        [s.image for s in samples],
        part_names,
        batch_size=params.eval_batch_size,
        score_threshold=params.eval_score_threshold,
        nms_iou=params.nms_iou,
        max_per_view=params.max_per_view,
        device=params.device,
    )
    ap = box_ap([(p[0], p[1], p[2]) for p in preds], [(s.xyxy, s.label) for s in samples], len(part_names), 0.5)
    return (float(np.nanmean(ap)) if np.isfinite(ap).any() else float("nan")), ap


def fine_tune(
    model: Any,
    processor: Any,
    train: Sequence[AdaptSample],
    val: Sequence[AdaptSample],
    part_names: Sequence[str],
    params: AdaptParams,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> AdaptResult:
    """Fine-tune ``model`` in place on ``train``; validation AP50 on ``val`` after each epoch.

    Epoch 0 is the model as given. The trainable tensors of the best epoch (highest mean
    AP50, NaN counting as -1; among equal AP50 the lowest detection loss on the selection
    views, :func:`fixed_views_loss`; then the first) are returned and loaded back into
    ``model`` at the end.
    ``val`` empty: selection on the training views (``AdaptResult.selection = "train"``).
    ``progress`` is called after every optimisation step with {"epoch", "step", "loss"} and
    after every epoch with the curve entry (keys "val_ap50", "val_loss").
    """
    import torch

    from .grounding_dino import prompt_for

    if not train:
        raise AdaptDataError("no training views")
    if params.epochs < 0 or params.batch_size < 1:
        raise ValueError("epochs must be >= 0 and batch_size >= 1")
    K = len(part_names)
    text, _A = prompt_for(processor.tokenizer, part_names, int(model.config.max_text_len))
    check_prompt_phrases(processor.tokenizer(text)["input_ids"], K, text)
    bad = sorted({int(x) for s in list(train) + list(val) for x in s.label if not 0 <= int(x) < K})
    if bad:
        raise AdaptDataError(f"labels {bad} are outside the {K} part names")

    device = torch.device(params.device)
    model.to(device)
    names = trainable_parameters(model, params.trainable)
    params_t = [p for n, p in model.named_parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params_t, lr=params.lr, weight_decay=params.weight_decay)
    n_steps = max(1, params.epochs * math.ceil(len(train) / params.batch_size))
    if params.lr_schedule == "cosine":
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 0.5 * (1.0 + math.cos(math.pi * min(i, n_steps) / n_steps)))
    else:
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda i: 1.0)
    torch.manual_seed(params.seed)
    rng = np.random.default_rng(params.seed)
    sel_set, selection = (val, "val") if len(val) else (train, "train")

    def snapshot() -> dict[str, Any]:
        return {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters() if p.requires_grad}

    def rank(ap: float, vloss: float) -> tuple[float, float]:
        """Higher is better: AP50 first (NaN counts as -1), then the lower selection-set loss, so
        that epochs tied on AP50 (e.g. all 0 early on) do not fall back to the base weights."""
        return (-1.0 if math.isnan(ap) else ap, -vloss if math.isfinite(vloss) else -math.inf)

    def sel_loss() -> float:
        return fixed_views_loss(model, processor, sel_set, part_names, batch_size=params.eval_batch_size, device=device)["loss"]

    t_eval = time.perf_counter()
    ap0, per0 = evaluate_ap50(model, processor, sel_set, part_names, params)
    vloss0 = sel_loss()
    seconds_eval = time.perf_counter() - t_eval
    curve: list[dict[str, Any]] = [
        {"epoch": 0, "loss": None, "val_ap50": ap0, "val_loss": vloss0, "per_part": _per_part(per0, part_names), "seconds": 0.0}
    ]
    best = (rank(ap0, vloss0), 0, snapshot())
    if progress:
        progress(curve[-1])
    seconds_train = 0.0
    step = 0
    for epoch in range(1, params.epochs + 1):
        model.train()
        if params.trainable != "all":  # frozen backbone: keep its normalisation statistics
            model.model.backbone.eval()
        t0 = time.perf_counter()
        losses = []
        for sel in _batches(len(train), params.batch_size, rng):
            batch = [train[i] for i in sel]
            inputs = _encode(processor, batch, text, device)
            labels = [{k: torch.as_tensor(v, device=device) for k, v in to_target(s).items()} for s in batch]
            out = model(**inputs, labels=labels)
            loss = out.loss
            if not torch.isfinite(loss):
                raise FloatingPointError(f"non-finite adaptation loss at epoch {epoch} (lr {params.lr} too high?)")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if params.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(params_t, params.grad_clip)
            opt.step()
            sched.step()
            step += 1
            losses.append(float(loss.detach()))
            if progress:
                progress({"epoch": epoch, "step": step, "loss": losses[-1]})
        sec = time.perf_counter() - t0
        seconds_train += sec
        t_eval = time.perf_counter()
        ap, per = evaluate_ap50(model, processor, sel_set, part_names, params)
        vloss = sel_loss()
        seconds_eval += time.perf_counter() - t_eval
        curve.append(
            {
                "epoch": epoch,
                "loss": float(np.mean(losses)),
                "val_ap50": ap,
                "val_loss": vloss,
                "per_part": _per_part(per, part_names),
                "seconds": round(sec, 3),
            }
        )
        if progress:
            progress(curve[-1])
        if rank(ap, vloss) > best[0]:
            best = (rank(ap, vloss), epoch, snapshot())
    with torch.no_grad():
        params_by_name = dict(model.named_parameters())
        for n, t in best[2].items():
            params_by_name[n].copy_(t.to(params_by_name[n].device))
    model.eval()
    return AdaptResult(
        curve=curve,
        best_epoch=best[1],
        best_ap50=float(curve[best[1]]["val_ap50"]),
        best_state=best[2],
        trainable_names=names,
        seconds_train=seconds_train,
        seconds_eval=seconds_eval,
        n_train=len(train),
        n_val=len(sel_set),
        selection=selection,
    )


#: Terms of the last decoder layer reported beside the total: class (focal), box L1 and GIoU.
LOSS_TERMS = ("loss_ce", "loss_bbox", "loss_giou")


def fixed_views_loss(
    model: Any, processor: Any, samples: Sequence[AdaptSample], part_names: Sequence[str], *, batch_size: int = 8, device: Any = "cpu"
) -> dict[str, float]:
    """Grounding DINO's training loss on fixed ``samples``, in eval mode (no dropout, no shuffle).

    Why: the per-step training loss mixes batches and dropout, so it cannot tell whether a
    ``trainable`` setting learns; the same views through the same loss before and after
    fine-tuning can. The box terms (``loss_bbox``, ``loss_giou``) show whether *where* the
    boxes go is learned, not only how the class logits are scaled. Returns ``loss`` (the
    weighted total with auxiliary terms) and :data:`LOSS_TERMS`, each the mean over batches
    weighted by batch size.
    """
    import torch

    from .grounding_dino import prompt_for

    if not samples:
        raise AdaptDataError("no views to measure the loss on")
    text, _A = prompt_for(processor.tokenizer, part_names, int(model.config.max_text_len))
    was = model.training
    model.eval()
    total = dict.fromkeys(("loss", *LOSS_TERMS), 0.0)
    try:
        with torch.no_grad():
            for i in range(0, len(samples), batch_size):
                batch = list(samples[i : i + batch_size])
                labels = [{k: torch.as_tensor(v, device=device) for k, v in to_target(s).items()} for s in batch]
                out = model(**_encode(processor, batch, text, device), labels=labels)
                parts = {"loss": out.loss, **{k: out.loss_dict[k] for k in LOSS_TERMS}}
                for k, v in parts.items():
                    total[k] += float(v) * len(batch)
    finally:
        model.train(was)
    return {k: v / len(samples) for k, v in total.items()}


def _per_part(ap: np.ndarray, part_names: Sequence[str]) -> dict[str, float | None]:
    return {n: (None if math.isnan(float(a)) else float(a)) for n, a in zip(part_names, ap)}


def memory_estimate_bytes(n_params: int, n_trainable: int, activations_per_image: float, batch_size: int) -> float:
    """Rough peak training memory: weights (fp32) + grads and AdamW moments of the trainable
    ones + activations kept for backward (measured per image, scales with the batch)."""
    return 4.0 * n_params + 12.0 * n_trainable + float(activations_per_image) * batch_size
