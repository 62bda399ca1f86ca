"""Per-image seeds: derived from the study seed, the class and the image's index.

Every image has its own seed, so any image can be regenerated alone, batches can be
regrouped freely, and adding images to a class (a larger ``per_class``) keeps the seeds
of the existing ones. A blank image is regenerated with the next ``attempt``.
"""

from __future__ import annotations

import zlib

import numpy as np

#: Seeds stay below 2**63 so they fit a signed int64 Parquet column and torch's manual_seed.
SEED_BITS = 63


def class_key(class_name: str) -> int:
    """A stable integer for a class name (CRC-32), so seeds do not depend on class order."""
    return zlib.crc32(class_name.encode("utf-8"))


def image_seed(study_seed: int, class_name: str, index: int, attempt: int = 0) -> int:
    """The seed of image ``index`` of ``class_name``; ``attempt`` > 0 after a blank image.

    Example:
        >>> image_seed(0, "cat", 3) == image_seed(0, "cat", 3)
        True
        >>> image_seed(0, "cat", 3) != image_seed(0, "cat", 3, attempt=1)
        True
    """
    sequence = np.random.SeedSequence([int(study_seed), class_key(class_name), int(index),
                                       int(attempt)])
    high, low = (int(v) for v in sequence.generate_state(2, np.uint32))
    return ((high << 32) | low) & ((1 << SEED_BITS) - 1)
