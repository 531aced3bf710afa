"""Transfer learning: fine-tuning policies, feature extraction, classical heads, retrieval.

* :func:`finetune`: trained weights (a run, a weights file, torchvision's ImageNet weights), a new
  classifier, frozen layers (``all-conv``, ``lower:N``), unfreezing with a lower backbone learning rate;
* :func:`extract_features`: any layer's activations, optionally reduced (PCA) or product-quantised;
* :func:`fit_head`: a linear SVM, k-NN or logistic regression on those features;
* :func:`retrieve` / :func:`retrieval_metrics`: nearest-neighbour image search, precision@k and mAP@k;
* :func:`subset_dataset` / :func:`subset_spec`: chosen classes and N labelled images per class.
"""

from .features import FeatureSet, extract_features, layer_activations
from .finetune import FinetuneOptions, finetune
from .freeze import FreezePolicy, apply_freeze, frozen_bn_eval, unfreeze
from .heads import HeadResult, fit_head
from .pq import ProductQuantizer
from .retrieval import RetrievalResult, nearest_neighbors, retrieval_metrics, retrieve
from .subset import SubsetSpec, subset_dataset, subset_spec

__all__ = [
    "FeatureSet",
    "FinetuneOptions",
    "FreezePolicy",
    "HeadResult",
    "ProductQuantizer",
    "RetrievalResult",
    "SubsetSpec",
    "apply_freeze",
    "extract_features",
    "finetune",
    "fit_head",
    "frozen_bn_eval",
    "layer_activations",
    "nearest_neighbors",
    "retrieval_metrics",
    "retrieve",
    "subset_dataset",
    "subset_spec",
    "unfreeze",
]
