"""Our DINO loss, centering and temperature schedule against lightly's implementation."""

import pytest
import torch
from lightly.loss import DINOLoss as LightlyDINOLoss

from synreal.dino.loss import DINOLoss
from synreal.dino.schedules import teacher_temperatures


@pytest.mark.parametrize("batch", [1, 5])
@pytest.mark.parametrize("local_crops", [0, 2, 6])
@pytest.mark.parametrize(("warmup_temp", "temp", "warmup_epochs"),
                         [(0.04, 0.04, 0), (0.04, 0.07, 3), (0.02, 0.05, 2)])
@pytest.mark.parametrize("student_temp", [0.1, 0.2])
def test_loss_and_centre_equal_lightly(batch, local_crops, warmup_temp, temp, warmup_epochs,
                                       student_temp):
    torch.manual_seed(batch * 100 + local_crops)
    dim, epochs = 32, 5
    n_crops = 2 + local_crops
    ours = DINOLoss(dim, n_crops, torch.from_numpy(
        teacher_temperatures(warmup_temp, temp, warmup_epochs, epochs)), student_temp, 0.9)
    reference = LightlyDINOLoss(dim, warmup_temp, temp, warmup_epochs, student_temp, 0.9)
    for epoch in range(epochs):  # successive calls also exercise the centre's EMA
        teacher = torch.randn(2 * batch, dim)
        student = torch.randn(n_crops * batch, dim)
        expected = reference(list(teacher.chunk(2)), list(student.chunk(n_crops)), epoch=epoch)
        torch.testing.assert_close(ours(student, teacher, epoch), expected)
        torch.testing.assert_close(ours.center, reference.center.reshape(1, dim))


def test_teacher_temperature_warmup_then_constant():
    temps = teacher_temperatures(0.04, 0.07, 3, 6)
    assert temps.tolist() == pytest.approx([0.04, 0.055, 0.07, 0.07, 0.07, 0.07])
