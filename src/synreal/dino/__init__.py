"""DINO self-distillation (Caron et al., ICCV 2021) on timm ViTs, as in the official recipe.

One concept per module: :mod:`~synreal.dino.params` (every hyper-parameter with the official
default), :mod:`~synreal.dino.backbones` (timm registry), :mod:`~synreal.dino.head`,
:mod:`~synreal.dino.loss`, :mod:`~synreal.dino.schedules`, :mod:`~synreal.dino.augment`
(multi-crop per image), :mod:`~synreal.dino.batch_augment` (the same on whole batches on the
device), :mod:`~synreal.dino.decoded` (a set decoded once into memory),
:mod:`~synreal.dino.sources` (real / synthetic / mix / MixDiff pairs),
:mod:`~synreal.dino.checkpoint`, :mod:`~synreal.dino.monitor` (collapse) and
:mod:`~synreal.dino.train` (the loop).
"""
