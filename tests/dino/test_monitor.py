"""The collapse monitor names both failure modes of self-distillation, a student that ignores
the image, and passes healthy runs."""

import math

import pytest
import torch

from synreal.dino.monitor import collapse_stats, mutual_information
from synreal.dino.verdict import collapse_kind, final_collapse

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


def test_a_student_that_ignores_the_image_is_flagged_behind_a_healthy_teacher():
    logits = torch.randn(128, K, generator=torch.Generator().manual_seed(1))
    teacher = collapse_stats(_softmax(logits, 0.1))
    student_probs = _softmax(logits[:1] + 0.01 * logits, 0.1)  # nearly one row for all
    student_mi = mutual_information(student_probs)
    assert student_mi < 0.01 * math.log(K)
    assert collapse_kind({**teacher, "student_mi": student_mi}) == "student"
    healthy = mutual_information(_softmax(logits, 0.1))
    assert collapse_kind({**teacher, "student_mi": healthy}) is None
    assert collapse_kind(teacher) is None  # without the student's statistic: teacher only
    uniform = collapse_stats(torch.full((32, K), 1.0 / K))
    assert collapse_kind({**uniform, "student_mi": student_mi}) == "uniform"


def _mi_as_mean_kl(probs: torch.Tensor) -> float:
    """I(image; prototype) = E_image KL(p(k | image) || p(k)): the textbook form."""
    p = probs.double()
    marginal = p.mean(0, keepdim=True)
    terms = torch.special.xlogy(p, p) - torch.special.xlogy(p, marginal)  # 0 log 0 = 0
    return float(terms.sum(-1).mean())


@pytest.mark.parametrize("temperature", [0.05, 0.5, 5.0])
def test_mutual_information_equals_the_mean_kl_to_the_marginal(temperature):
    logits = torch.randn(48, K, generator=torch.Generator().manual_seed(2))
    probs = _softmax(logits, temperature)
    assert mutual_information(probs) == pytest.approx(_mi_as_mean_kl(probs), abs=1e-4)
    assert collapse_stats(probs)["teacher_mi"] == pytest.approx(mutual_information(probs))


def test_mutual_information_is_zero_when_outputs_ignore_the_image():
    # both collapse modes: every image uniform, or every image the same prototype
    one_hot = torch.full((16, K), 1e-9)
    one_hot[:, 3] = 1.0
    for probs in (torch.full((16, K), 1.0 / K), one_hot / one_hot.sum(-1, keepdim=True)):
        assert mutual_information(probs) == pytest.approx(0.0, abs=1e-4)
    # the same input-independent but sharp distribution for every image: still 0
    shared = _softmax(torch.randn(1, K, generator=torch.Generator().manual_seed(3)), 0.05)
    assert mutual_information(shared.expand(16, K)) == pytest.approx(0.0, abs=1e-4)


def test_mutual_information_is_log_n_for_distinct_one_hot_images():
    n = 32
    probs = torch.full((n, K), 1e-12)
    probs[torch.arange(n), torch.arange(n)] = 1.0
    assert mutual_information(probs) == pytest.approx(math.log(n), abs=1e-3)


def test_the_runs_verdict_averages_its_last_steps():
    log_k = math.log(K)
    healthy = {"teacher_entropy": 0.3 * log_k, "kl_to_uniform": 0.5 * log_k}
    noisy = [{**healthy, "student_mi": mi} for mi in [0.5] * 20 + [0.08, 0.07, 0.03]]
    assert collapse_kind({**noisy[-1], "log_k": log_k}) == "student"  # one batch's reading
    assert final_collapse(noisy, log_k) is None
    collapsed = [{**healthy, "student_mi": 0.5}] * 20 + [{**healthy, "student_mi": 0.01}] * 10
    assert final_collapse(collapsed, log_k) == "student"
    drifting = [{"teacher_entropy": 0.95 * log_k, "kl_to_uniform": 0.01,
                 "student_mi": 0.5}] * 10
    assert final_collapse(drifting, log_k) == "uniform"
    assert final_collapse([], log_k) is None
