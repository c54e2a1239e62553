"""PartSTAD training, inference and label decoding (SPEC §7.9-7.11), one concept per module.

* :mod:`pipeline.train.objects`: :class:`TrainObject`, one object prepared once for training
  and inference (network inputs, compressed score index, targets).
* :mod:`pipeline.train.stack`: :class:`ObjectStack`, several prepared objects as one
  problem (one forward pass, per-object losses and validation mIoU).
* :mod:`pipeline.train.stacked_grad`: that forward pass and its gradient written out.
* :mod:`pipeline.train.params`: :class:`TrainParams`, the hyper-parameters (the one
  definition of params.yaml's ``train`` section; no torch import).
* :mod:`pipeline.train.loop`: the training loop and checkpoint selection
  (:func:`train_weight_net`).
* :mod:`pipeline.train.decode`: probabilities of a trained network and their labels
  (:func:`predict`, :func:`labels_from_probs`, the per-object mIoU of §7.10).
* :mod:`pipeline.train.checkpoint`: weights on disk (safetensors + metadata, no pickles).
* :mod:`pipeline.train.ablations`: the "masks without weights" ablation.

Import from the submodules; this package re-exports nothing.
"""
