"""The training loop: resume equivalence, NaN guard, pre-emption, export and reload."""

import json
import os
import signal
import threading
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from synreal.dino import verdict
from synreal.dino.augment import ViewPlan
from synreal.dino.checkpoint import load_backbone
from synreal.dino.params import DinoParams
from synreal.dino.train import REQUEUE_EXIT_CODE, Preempted, TrainingDiverged, train_dino
from synreal.errors import ConfigError

TINY = DinoParams(arch="vit_tiny_demo", out_dim=64, epochs=3, batch_size=4, warmup_epochs=1,
                  global_crop_size=16, local_crop_size=8, local_crops_number=2, num_workers=0,
                  checkpoint_every=2, eval_resize=18, drop_path_rate=0.1, lr=0.002)


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    root = tmp_path_factory.mktemp("imgs")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(12):
        path = root / f"{i}.png"
        Image.fromarray(rng.integers(0, 255, (20, 20, 3), dtype=np.uint8)).save(path)
        paths.append((str(path),))
    return paths


def _weights(directory):
    return load_file(directory / "student.safetensors")


@pytest.mark.parametrize("augment", ["cpu", "batched"])
def test_resumed_training_equals_uninterrupted(samples, tmp_path, augment, monkeypatch):
    judged, final_collapse = [], verdict.final_collapse  # the steps each verdict averaged

    def spy(records, log_k):
        judged.append([r["step"] for r in records])
        return final_collapse(records, log_k)

    monkeypatch.setattr(verdict, "final_collapse", spy)
    params = replace(TINY, augment=augment)
    plan = ViewPlan.single(TINY.local_crops_number)
    full = train_dino(params, samples, plan, tmp_path / "full", progress=False)
    assert full["complete"] and full["steps_done"] == 9
    part = train_dino(params, samples, plan, tmp_path / "split", max_steps=5, progress=False)
    assert not part["complete"] and not (tmp_path / "split" / "student.safetensors").exists()
    resumed = train_dino(params, samples, plan, tmp_path / "split", progress=False)
    assert resumed["complete"]
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "split")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], rtol=0, atol=0, msg=name)
    log = [json.loads(line) for line in (tmp_path / "split" / "train_log.jsonl").open()]
    assert [r["step"] for r in log] == list(range(9))
    monitored = ("teacher_entropy", "kl_to_uniform", "teacher_mi", "student_mi")
    assert all(-1e-4 <= r[key] <= np.log(TINY.out_dim) + 1e-4 for r in log for key in monitored)
    # the verdict reads the whole log after warm-up (epoch 1 = steps 3-8): a resumed run's
    # includes the steps before the resume, and a rerun with nothing left to do has one too
    again = train_dino(params, samples, plan, tmp_path / "split", progress=False)
    assert again["steps_done"] == 9
    assert judged == [[3, 4, 5, 6, 7, 8], [3, 4], [3, 4, 5, 6, 7, 8], [3, 4, 5, 6, 7, 8]]
    assert full["collapse"] == resumed["collapse"] == again["collapse"]


def test_batched_augmentation_trains_on_its_own_crops(samples, tmp_path, monkeypatch):
    """augment: batched feeds the loop from the decoded set, never from the DataLoader path."""
    from synreal.dino import train as train_module

    def no_loader(*args, **kwargs):
        raise AssertionError("the per-sample DataLoader path was used")

    monkeypatch.setattr(train_module, "DataLoader", no_loader)
    params = replace(TINY, augment="batched", decoded_size=24)
    summary = train_dino(params, samples, ViewPlan.single(2), tmp_path, max_steps=3,
                         progress=False)
    assert summary["steps_done"] == 3 and np.isfinite(summary["final_loss"])
    with pytest.raises(ConfigError, match="batched"):
        replace(TINY, augment="gpu")


def test_export_loads_back_as_an_evaluation_backbone(samples, tmp_path):
    train_dino(TINY, samples, ViewPlan.single(2), tmp_path, progress=False)
    model, preprocess = load_backbone(tmp_path)
    assert preprocess.crop == 16 and preprocess.resize == 18
    with torch.no_grad():
        assert model(torch.randn(2, 3, 16, 16)).shape == (2, 96)


def test_a_finished_run_keeps_its_final_state_not_its_checkpoint(samples, tmp_path,
                                                                  monkeypatch):
    """The export holds the final student, teacher and centre; the optimizer moments go.

    The last step writes no resume checkpoint (the export follows at once): with a checkpoint
    every 2 of 9 steps, steps 2, 4, 6 and 8 save one and step 9 does not.
    """
    from synreal.dino import checkpoint
    from synreal.dino import train as train_module

    saved = []
    save = train_module.save_training_state
    monkeypatch.setattr(train_module, "save_training_state",
                        lambda directory, step, *args: saved.append(step)
                        or save(directory, step, *args))
    plan = ViewPlan.single(TINY.local_crops_number)
    summary = train_dino(TINY, samples, plan, tmp_path / "kept", progress=False)
    assert summary["complete"] and not (tmp_path / "kept" / "checkpoints").exists()
    assert saved == [2, 4, 6, 8]
    final = checkpoint.load_final_state(tmp_path / "kept")
    # the same run stopped after step 8 keeps that checkpoint; resumed, it ends in the same state
    train_dino(TINY, samples, plan, tmp_path / "both", max_steps=8, progress=False)
    tensors, _ = checkpoint.load_training_state(checkpoint.latest_checkpoint(tmp_path / "both"))
    kept = {k for k in tensors if k.startswith(("student.", "teacher.")) or k == "loss.center"}
    assert final.keys() == kept and any(k.startswith("optim.") for k in tensors)
    train_dino(TINY, samples, plan, tmp_path / "both", progress=False)
    resumed = checkpoint.load_final_state(tmp_path / "both")
    assert not (tmp_path / "both" / "checkpoints").exists() and resumed.keys() == final.keys()
    for name in final:
        torch.testing.assert_close(resumed[name], final[name], rtol=0, atol=0, msg=name)


@pytest.mark.parametrize("head", [{}, {"head_hidden_dim": 64, "head_bottleneck_dim": 32}],
                         ids=["official-head", "narrow-head"])
def test_the_disk_estimate_of_a_run_is_what_it_writes(samples, tmp_path, head):
    """doctor's per-run bytes (from the recipe's parameter counts) against a real run's files,
    with the official head widths and with the narrower ones a recipe can set."""
    from dataclasses import asdict
    from types import SimpleNamespace

    from synreal.dino import checkpoint
    from synreal.doctor import run_bytes

    params = replace(TINY, **head)
    train_dino(params, samples, ViewPlan.single(2), tmp_path / "run", max_steps=2,
               progress=False)
    state = checkpoint.latest_checkpoint(tmp_path / "run").with_suffix(".safetensors")
    state_bytes = state.stat().st_size
    train_dino(params, samples, ViewPlan.single(2), tmp_path / "run", progress=False)
    head_weights = load_file(tmp_path / "run" / checkpoint.TEACHER_HEAD_FILE)
    hidden, bottleneck = params.head_hidden_dim, params.head_bottleneck_dim
    assert head_weights["mlp.0.weight"].shape == (hidden, 96)
    assert head_weights["mlp.4.weight"].shape == (bottleneck, hidden)
    kept = sum((tmp_path / "run" / name).stat().st_size for name in
               (checkpoint.STUDENT_FILE, checkpoint.BACKBONE_FILE, checkpoint.TEACHER_HEAD_FILE))
    estimate, checkpoint_estimate = run_bytes(SimpleNamespace(params={"dino": asdict(params)}),
                                              plan=None)
    # the files add safetensors headers and the centre; a checkpoint has no AdamW moments
    # for frozen parameters (the normalised last layer's scale)
    assert kept == pytest.approx(estimate, rel=0.02)
    assert state_bytes == pytest.approx(checkpoint_estimate, rel=0.02)


def test_nan_loss_stops_with_step_and_last_checkpoint(samples, tmp_path, monkeypatch):
    from synreal.dino import loss as loss_module

    original = loss_module.DINOLoss.forward
    calls = {"n": 0}

    def poisoned(self, student_out, teacher_out, epoch):
        calls["n"] += 1
        value = original(self, student_out, teacher_out, epoch)
        return value * float("nan") if calls["n"] == 4 else value

    monkeypatch.setattr(loss_module.DINOLoss, "forward", poisoned)
    with pytest.raises(TrainingDiverged, match=r"at step 3; last good checkpoint: .*state-2"):
        train_dino(TINY, samples, ViewPlan.single(2), tmp_path, progress=False)


def test_sigterm_saves_a_checkpoint_and_asks_for_requeue(samples, tmp_path, monkeypatch):
    from synreal.dino import train as train_module

    original = train_module.clip_gradients
    calls = {"n": 0}

    def clip_then_signal(model, clip):
        calls["n"] += 1
        if calls["n"] == 3:  # a pre-emption notice arrives during step 2
            threading.Thread(target=os.kill, args=(os.getpid(), signal.SIGTERM)).start()
            threading.Event().wait(0.2)
        original(model, clip)

    monkeypatch.setattr(train_module, "clip_gradients", clip_then_signal)
    with pytest.raises(Preempted) as stop:
        train_dino(TINY, samples, ViewPlan.single(2), tmp_path, progress=False)
    assert stop.value.code == REQUEUE_EXIT_CODE
    saved = sorted(p.name for p in (tmp_path / "checkpoints").glob("*.json"))
    assert saved == [f"state-{stop.value.step}.json"] and stop.value.step == 3


@pytest.mark.slow
def test_compiled_networks_train_like_eager_mode(samples, tmp_path):
    # drop path off: random ops inside a compiled graph draw different numbers
    params = replace(TINY, epochs=1, drop_path_rate=0.0)
    plan = ViewPlan.single(TINY.local_crops_number)
    eager = train_dino(params, samples, plan, tmp_path / "eager", progress=False)
    compiled = train_dino(replace(params, torch_compile=True), samples, plan,
                          tmp_path / "compiled", progress=False)
    assert compiled["complete"] and compiled["steps_done"] == eager["steps_done"] == 3
    a, b = _weights(tmp_path / "eager"), _weights(tmp_path / "compiled")
    assert a.keys() == b.keys()  # plain module names, no compile wrapper prefix
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=1e-4, atol=1e-5, msg=name)
    logs = [[json.loads(line)["loss"] for line in (tmp_path / run / "train_log.jsonl").open()]
            for run in ("eager", "compiled")]
    np.testing.assert_allclose(logs[1], logs[0], rtol=1e-5)


def test_the_random_init_control_is_exactly_where_the_dino_run_of_its_seed_starts(
        samples, tmp_path):
    """The pretrain stage's random_init source exports the untrained teacher: the same
    weights a DINO run of that seed holds when no step has changed them (lr 0: AdamW's
    update and its decoupled weight decay both scale with lr, and the EMA of an unchanged
    student is the student), loadable as an evaluation backbone, deterministic."""
    from synreal.stages.pretrain import resolve
    from synreal.stages.pretrain import run as pretrain

    recipe = {k: list(v) if isinstance(v, tuple) else v for k, v in vars(TINY).items()}
    spec = {"params": resolve(recipe, {"source": "random_init"}, "control_random_init"),
            "inputs": {}}
    assert spec["params"]["data"] == {"source": "random_init"}
    for name in ("a", "b"):
        pretrain(spec, tmp_path / name)
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["complete"] and summary["steps_done"] == 0 and summary["n_images"] == 0
    assert not (tmp_path / "a" / "train_log.jsonl").exists()
    untrained, preprocess = load_backbone(tmp_path / "a")
    still = train_dino(replace(TINY, lr=0.0, min_lr=0.0), samples,
                       ViewPlan.single(TINY.local_crops_number), tmp_path / "still",
                       progress=False)
    assert still["complete"] and still["steps_done"] == 9
    started, _ = load_backbone(tmp_path / "still")
    for key, value in started.state_dict().items():  # up to the EMA's rounding
        torch.testing.assert_close(untrained.state_dict()[key], value, rtol=1e-5, atol=1e-7)
    other = {**spec, "params": {**spec["params"],
                                "dino": {**spec["params"]["dino"], "seed": TINY.seed + 1}}}
    pretrain(other, tmp_path / "other-seed")
    another, _ = load_backbone(tmp_path / "other-seed")
    assert not torch.allclose(another.state_dict()["pos_embed"],
                              untrained.state_dict()["pos_embed"])
    again, _ = load_backbone(tmp_path / "b")
    assert all(torch.equal(again.state_dict()[k], v) for k, v in untrained.state_dict().items())
    from synreal.eval.extract import extract_features

    features, _ = extract_features(untrained, [p[0] for p in samples[:3]], preprocess)
    assert features.shape[0] == 3 and np.isfinite(features).all()
