"""RealTune and SynTune (SynBench Sec. 4): short tuning of a pretrained backbone.

* :mod:`~synreal.realtune.subsets`: the small, seeded subsets the tuning sees, recorded by id.
* :mod:`~synreal.realtune.finetune`: supervised fine-tuning with a linear head and its test
  top-1 (``mode: supervised``). ``mode: ssl`` continues DINO itself
  (:func:`synreal.dino.train.train_dino` with ``init_from``).
"""
