"""Frozen-feature evaluation: features files, linear probe, k-NN, retrieval, CIs, plots.

One concept per module:

* :mod:`~synreal.eval.features_io` - ``features.parquet`` writer/reader with metadata checks.
* :mod:`~synreal.eval.probe` - linear probe on features (lr/wd chosen on held-out trainval).
* :mod:`~synreal.eval.dino_probe` - DINO eval_linear with augmentations, on images.
* :mod:`~synreal.eval.knn` - weighted k-NN (DINO eval_knn), faiss search.
* :mod:`~synreal.eval.retrieval` - mAP, mAP@R, P@1, recall@k by cosine similarity.
* :mod:`~synreal.eval.bootstrap` - percentile and paired bootstrap CIs.
* :mod:`~synreal.eval.leakage` - test images never reach training.
* :mod:`~synreal.eval.plots` - confusion matrix and retrieval example grids.

Import the modules directly; this package does not import torch-heavy modules eagerly.
"""
