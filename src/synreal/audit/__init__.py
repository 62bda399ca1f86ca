"""SynBench data audits of real and synthetic datasets (SynBench Section 3, Figs. 4-5).

One measure per module:

* :mod:`~synreal.audit.brightness` - mean CIELAB L* per image (exact conversion).
* :mod:`~synreal.audit.object_scale` - central-object box area ratio; box-finder registry
  (``foreground``, ``owlvit``, ``yolo-world``, ``boxes-from-column``, ``none``).
* :mod:`~synreal.audit.foreground` - the weights-free foreground box estimator.
* :mod:`~synreal.audit.owlvit` - the OWL-ViT / OWLv2 open-vocabulary detector behind the
  ``owlvit`` scale and person backends (local weights; the class from ``model_type``).
* :mod:`~synreal.audit.person_blocking` - person boxes over the object box; detector registry;
  the judge's second step over the images with a person.
* :mod:`~synreal.audit.vlm` - the person-blocking judge: SynBench's yes/no question to a local
  vision-language model (``blip-vqa``), answers parsed strictly (unknown is never no).
* :mod:`~synreal.audit.consistency` - class consistency with a reference classifier
  (``probe-on-real``, ``clip-zeroshot``, ``timm``), per class and confusion matrix.
* :mod:`~synreal.audit.diversity` - mean pairwise cosine distance (MixDiff 5.3), with a
  vectorised bootstrap CI.
* :mod:`~synreal.audit.fid` - FID (with a bootstrap CI) and KID between embedding sets.
* :mod:`~synreal.audit.near_duplicates` - faiss search inside a set and against the test set.
* :mod:`~synreal.audit.blank` - blank / constant / corrupt images.
* :mod:`~synreal.audit.run` - :func:`audit_dataset`, the stage's entry point.
* :mod:`~synreal.audit.tiny` - random OWL-ViT / OWLv2, BLIP VQA and timm models saved the way
  the audit loads them, for the benchmark and offline smoke runs (tiny or full-size).

Public API::

    AuditParams                           every control, documented
    audit_dataset(params, manifest, out_dir, *, reference_manifest=None, test_manifest=None,
                  embed=None, fid_embed=None, name=..., reference_name=...) -> summary dict

Importing this package is cheap: planning (every Snakefile read, twice per Slurm job) needs
only :class:`AuditParams`, so the runner and its pandas and matplotlib load on first use of
its names, and torch, transformers and timm only when a model-backed backend is created.
"""

from synreal.audit.params import AuditParams

#: Names served from synreal.audit.run, imported when first asked for.
_FROM_RUN = ("AUDIT_FILE", "REFERENCE_CONSISTENCY_FILE", "SUMMARY_FILE", "audit_dataset")


def __getattr__(name: str):
    if name in _FROM_RUN:
        from synreal.audit import run

        return getattr(run, name)
    raise AttributeError(f"module 'synreal.audit' has no attribute {name!r}")


__all__ = ["AuditParams", *_FROM_RUN]
