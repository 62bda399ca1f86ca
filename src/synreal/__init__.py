"""synreal: a content-addressed pipeline comparing SSL pretraining on synthetic vs real images.

Stages (ingest, generate, audit, pretrain, realtune, features, probe, knn, retrieval, report)
are pure functions ``(spec, upstream artifacts) -> artifact directory`` callable from Python,
from the CLI (``python -m synreal <stage>``) and from thin Snakemake rules.
"""

__version__ = "0.1.0"
