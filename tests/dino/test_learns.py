"""DINO on the demo's toy world: it trains without collapse, and whether it beats random init.

The demo's own recipe (96-wide demo ViT embedding its mean patch token, 32/16 px crops, 50
steps) on 180 toy-AFHQ images of the demo's toy world, then a weighted k-NN (k = 20) on 90
held-out images of the same 3 coarse classes, against the same architecture at its random
initialisation. Every run must end with no collapse flag, of the teacher or of the student.
The MixDiff case pairs each real image with the demo's toy variation of it, split 1+6 real /
1+2 synthetic views. Deterministic on CPU. Only the MixDiff run beats its random init here today
(the strict xfail on the real runs says why and fails once that is fixed).
The last tests: the real-pretrained demo backbone reaches 3x chance on the demo's Pet task, on
the main table's own measure, and the task's pixels hold the breeds."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from synreal.data.toyworld import COARSE_CLASSES, WorldParams
from synreal.data.toyworld_layouts import DATA_DIR, write_toyworld
from synreal.dino.augment import ViewPlan
from synreal.dino.backbones import create_backbone
from synreal.dino.checkpoint import load_backbone
from synreal.dino.params import DinoParams
from synreal.dino.sources import build_samples
from synreal.dino.train import train_dino
from synreal.eval.extract import extract_features
from synreal.eval.knn import knn_accuracy
from synreal.generate.params import GenerateParams
from synreal.generate.run import generate_dataset
from synreal.stages.pretrain import resolve

from ..conftest import REPO

pytestmark = pytest.mark.slow


def _toy_afhq(root, world: dict):
    """180 training and 90 test toy-AFHQ images of the demo's toy world: manifests."""
    params = WorldParams(scale=tuple(world["scale"]), brightness=tuple(world["brightness"]),
                         occlusion_prob=world["occlusion_prob"])
    draws = write_toyworld(root, "afhq", {"train": 60, "test": 30}, 64, 0, params)
    return pd.DataFrame({"id": draws["relpath"], "label_name": draws["coarse"],
                         "label": draws["coarse"].map(COARSE_CLASSES.index),
                         "path": [str(root / DATA_DIR / r) for r in draws["relpath"]],
                         "split": draws["split"]}).sort_values("id", ignore_index=True)


RUNS = [("real", "cpu"), ("real", "batched"), ("mixdiff", "batched")]


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory):
    """Each (source, augment) run of the demo recipe, trained once for the tests below."""
    cache: dict = {}

    def run(source: str, augment: str) -> dict:
        if (source, augment) not in cache:
            cache[source, augment] = _train(tmp_path_factory.mktemp(f"{source}-{augment}"),
                                            source, augment)
        return cache[source, augment]

    return run


def _train(tmp_path, source, augment) -> dict:
    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    recipe = config["pretrain"]["params"]
    real = _toy_afhq(tmp_path / "afhq", config["toyworld"])
    run = {"source": source, "real": "afhq"}
    variations = None
    if source == "mixdiff":  # the demo's own counterparts: toy variations, MixDiff's 1+6 / 1+2
        generator = config["generators"]["afhq_var"]["params"]
        variations = generate_dataset(GenerateParams(**generator), tmp_path / "var",
                                      source_manifest=real[real["split"] == "train"],
                                      progress=False)
    resolved = resolve({**recipe, "augment": augment}, run, "test")
    # batched decodes at the images' own 64 px (the demo's decoded_size): both paths crop
    # from the same pixels
    params = DinoParams(**resolved["dino"])
    samples = build_samples(source, real, variations)
    plan = (ViewPlan.mixdiff(**resolved["data"]["views"]) if source == "mixdiff"
            else ViewPlan.single(params.local_crops_number))
    summary = train_dino(params, samples, plan, tmp_path / "run", progress=False)
    log = [json.loads(line) for line in (tmp_path / "run" / "train_log.jsonl").open()]
    trained, preprocess = load_backbone(tmp_path / "run")
    torch.manual_seed(params.seed)
    random_init = create_backbone(params.arch, params.global_crop_size).eval()
    scores = {}
    splits = {split: real[real["split"] == split] for split in ("train", "test")}
    for name, model in (("dino", trained), ("random", random_init)):
        train, _ = extract_features(model, list(splits["train"]["path"]), preprocess)
        test, _ = extract_features(model, list(splits["test"]["path"]), preprocess)
        scores[name] = knn_accuracy(train, splits["train"]["label_name"].to_numpy(), test,
                                    splits["test"]["label_name"].to_numpy(), k=20)
    return {"summary": summary, "log": log, "params": params, "scores": scores}


@pytest.mark.parametrize(("source", "augment"), RUNS)
def test_dino_lowers_its_loss_without_collapse(demo_runs, source, augment):
    result = demo_runs(source, augment)
    summary, log, params = result["summary"], result["log"], result["params"]
    assert summary["complete"] and min(r["loss"] for r in log[5:]) < log[0]["loss"] - 0.2
    final = np.mean([r["teacher_entropy"] for r in log[-5:]])
    assert final < 0.8 * np.log(params.out_dim), f"teacher drifted to uniform: {final:.2f}"
    assert summary["collapse"] is None, log[-1]


_REAL_RUNS_DO_NOT_BEAT_RANDOM_INIT = pytest.mark.xfail(strict=True, reason=(
    "known defect: the demo's toy world tells its classes apart mostly by colour, which DINO's "
    "colour jitter and grayscale are built to discard, and the demo ViT's random init already "
    "reads colour: on the demo's toy AFHQ (seed 0) 50 DINO steps on the real images give k-NN "
    "0.511 (cpu) and 0.522 (batched) against 0.511 at random init; the MixDiff run, whose "
    "toy variations redraw each animal's pose and scale, does beat it. Strict: this fails once "
    "DINO on real images beats its random init, so the marker is removed."))


@pytest.mark.parametrize(("source", "augment"), [
    pytest.param(*run, marks=_REAL_RUNS_DO_NOT_BEAT_RANDOM_INIT) if run[0] == "real"
    else run for run in RUNS])
def test_dino_beats_its_random_init_on_knn(demo_runs, source, augment):
    scores = demo_runs(source, augment)["scores"]
    assert scores["dino"] > scores["random"] + 0.03, scores


def _stage_manifest(root, layout, counts, world):
    """Render with the toyworld stage's own code; the manifest the probe and k-NN read."""
    from synreal.data.toyworld import BREEDS
    from synreal.stages.toyworld import run as render

    render({"params": {"layout": layout, "per_class": counts, **world, "seed": 0}}, root)
    draws = pd.read_parquet(root / "draws.parquet")
    names = draws["coarse"] if layout == "afhq" else draws["breed"]
    classes = list(COARSE_CLASSES) if layout == "afhq" else [b.name for b in BREEDS]
    return pd.DataFrame({"id": draws["relpath"], "label_name": names,
                         "label": names.map(classes.index),
                         "path": [str(root / DATA_DIR / r) for r in draws["relpath"]],
                         "split": draws["split"]}).sort_values("id", ignore_index=True)


def test_real_pretrained_demo_backbone_reaches_3x_chance_on_the_demo_pet_task(tmp_path):
    """Issue 21: the demo's Pet task is learnable, read the way the main table reads it.

    The demo's own toy world, Pet counts, DINO recipe (real run), feature extraction
    (evaluation.features) and linear probe (evaluation.probe's first protocol, through the
    probe stage's own fit), on each of the main table's training seeds: the mean top-1 over
    the seeds reaches 3x chance (25 % for 12 breeds)."""
    from synreal.config import replicate_seeds
    from synreal.params import parse_params
    from synreal.plan_jobs import replicate_seed
    from synreal.stages.features import FeaturesParams
    from synreal.stages.probe import ProbeParams, _probe

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    world = dict(config["toyworld"])
    afhq = _stage_manifest(tmp_path / "afhq", "afhq", config["datasets"]["afhq"]["toyworld"],
                           world)
    pets = _stage_manifest(tmp_path / "pets", "oxford_pet",
                           config["datasets"]["pets"]["toyworld"], world)
    evaluation = config["evaluation"]
    features = parse_params(FeaturesParams, evaluation.get("features", {}), "features")
    probe = parse_params(ProbeParams, evaluation.get("probe", {}), "probe")
    fit, _ = _probe(probe.protocols[0], probe)
    train, test = (pets[pets["split"] == split] for split in ("trainval", "test"))
    listed, count, _ = replicate_seeds(config)
    recipe = resolve(config["pretrain"]["params"], {"source": "real", "real": "afhq"}, "real")
    seeds = [replicate_seed(recipe["dino"]["seed"], i, listed) for i in range(count)]
    top1 = []
    for seed in seeds:  # the main table's real run, once per replicate seed, as the plan has it
        params = DinoParams(**{**recipe["dino"], "seed": seed})
        summary = train_dino(params, build_samples("real", afhq, None),
                             ViewPlan.single(params.local_crops_number), tmp_path / f"run{seed}",
                             progress=False)
        assert summary["complete"] and summary["collapse"] is None
        model, preprocess = load_backbone(tmp_path / f"run{seed}")
        x_train, x_test = (extract_features(model, list(split["path"]), preprocess,
                                            features.protocol, features.n_last_blocks,
                                            features.avgpool)[0] for split in (train, test))
        top1.append(fit(x_train, train["label"].to_numpy(), x_test,
                        test["label"].to_numpy()).top1)
    chance = 1 / train["label"].nunique()
    assert np.mean(top1) >= 3 * chance, (
        f"Pet linear top-1 {np.mean(top1):.3f} (seeds {seeds}: {np.round(top1, 3).tolist()}), "
        f"chance {chance:.3f}")


def test_the_demo_pet_task_is_learnable_from_its_pixels(tmp_path):
    """The toy world holds the breeds: the main table's linear probe (evaluation.probe's first
    protocol) on 8x8 RGB thumbnails of the demo's Pet images, instead of backbone features,
    reaches 4x chance. What the backbones' features lose of it is theirs, not the task's."""
    from PIL import Image

    from synreal.params import parse_params
    from synreal.stages.probe import ProbeParams, _probe

    config = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    pets = _stage_manifest(tmp_path / "pets", "oxford_pet",
                           config["datasets"]["pets"]["toyworld"], dict(config["toyworld"]))
    probe = parse_params(ProbeParams, config["evaluation"].get("probe", {}), "probe")
    fit, _ = _probe(probe.protocols[0], probe)

    def thumbnails(rows):
        return np.stack([np.asarray(Image.open(path).convert("RGB").resize(
            (8, 8), Image.BILINEAR), dtype=np.float32).ravel() / 255 for path in rows["path"]])

    train, test = (pets[pets["split"] == split] for split in ("trainval", "test"))
    top1 = fit(thumbnails(train), train["label"].to_numpy(), thumbnails(test),
               test["label"].to_numpy()).top1
    assert top1 >= 4 / train["label"].nunique(), f"thumbnail top-1 {top1:.3f}"
