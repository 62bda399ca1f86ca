"""The collapse monitor names both failure modes of self-distillation and passes healthy runs."""

import math

import pytest
import torch

from synreal.dino.monitor import collapse_kind, collapse_stats

K = 256


def _softmax(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    return torch.softmax(logits / temperature, dim=-1)


def test_uniform_teacher_outputs_are_uniform_collapse():
    stats = collapse_stats(torch.full((32, K), 1.0 / K))
    assert stats["teacher_entropy"] == pytest.approx(math.log(K), rel=1e-5)
    assert stats["kl_to_uniform"] == pytest.approx(0.0, abs=1e-5)
    assert collapse_kind(stats) == "uniform"


def test_nearly_uniform_outputs_are_flagged_too():
    # the demo's drifted runs ended at 0.95 log K: no longer informative targets
    logits = torch.randn(64, K, generator=torch.Generator().manual_seed(0))
    probs = _softmax(logits, 2.0)
    stats = collapse_stats(probs)
    assert 0.9 * math.log(K) < stats["teacher_entropy"] < math.log(K)
    assert collapse_kind(stats) == "uniform"


def test_one_prototype_for_every_image_is_dominant_collapse():
    probs = torch.full((32, K), 1e-9)
    probs[:, 7] = 1.0
    stats = collapse_stats(probs / probs.sum(-1, keepdim=True))
    assert stats["kl_to_uniform"] == pytest.approx(math.log(K), abs=1e-3)
    assert collapse_kind(stats) == "dominant"


def test_sharp_outputs_spread_over_prototypes_are_healthy():
    # each image confident about its own prototype, the batch using many of them
    logits = torch.randn(128, K, generator=torch.Generator().manual_seed(1))
    stats = collapse_stats(_softmax(logits, 0.1))
    assert stats["teacher_entropy"] < 0.5 * math.log(K)
    assert stats["kl_to_uniform"] < 0.5 * math.log(K)
    assert collapse_kind(stats) is None
