"""The EMA teacher's averaging window of every DINO run a study plans, in epochs of its data.

DINO's teacher averages the student over about ``1 / (1 - m)`` steps; what that means
depends on the run's batch size and data size (:func:`~synreal.dino.params.
teacher_window_epochs`). Snakemake prints these lines when it loads a study, so a momentum
copied from a recipe at another batch size or data size shows before any GPU-hour is spent.
"""

from __future__ import annotations

from pathlib import Path

from synreal.dino.params import DinoParams, realtune_recipe, teacher_window_epochs


def _line(label: str, params: dict, n_images: int) -> str:
    momentum = float(params.get("momentum_teacher", DinoParams.momentum_teacher))
    batch = int(params.get("batch_size", DinoParams.batch_size))
    steps = "inf" if momentum >= 1 else f"{1 / (1 - momentum):,.0f}"
    text = f"{label}: teacher momentum {momentum:g} averages ~{steps} steps"
    if n_images >= batch:
        epochs = teacher_window_epochs(momentum, batch, n_images)
        return f"{text} = {epochs:.2f} epochs of {n_images:,} images at batch {batch}"
    return f"{text} at batch {batch} (image count known once the data is ingested)"


def _counterpart(config: dict, run: dict) -> str:
    """The real dataset a run's data is sized as: its own, or its generator's ``like``."""
    if run.get("real"):
        return str(run["real"])
    generator = config.get("generators", {}).get(run.get("synthetic") or "", {})
    return str(generator.get("like") or (generator.get("params") or {}).get("dataset") or "")


def training_images(config: dict, base: Path) -> dict[str, int]:
    """Training images of each real dataset whose folder can be counted (else left out)."""
    from synreal.cost import _training_images

    try:
        return _training_images(config, base)
    except Exception:  # noqa: BLE001 - the preflight names a bad folder; nothing to count here
        return {}


def _realtune_subset(config: dict, counts: dict[str, int]) -> tuple[dict, float, str] | None:
    """RealTune ssl's ``(recipe, fraction, real dataset)``; None without an ssl section."""
    from synreal.stages.realtune import RealtuneParams

    ssl = (config.get("realtune") or {}).get("ssl")
    if not ssl:
        return None
    shared = (config.get("pretrain") or {}).get("params") or {}
    fraction = float((ssl.get("params") or {}).get("fraction", RealtuneParams.fraction))
    return realtune_recipe(shared, ssl.get("dino") or {}), fraction, str(ssl.get("real", ""))


def window_lines(config: dict, counts: dict[str, int]) -> list[str]:
    """One line per pretraining run and for RealTune's ssl continuation.

    ``counts``: training images per real dataset (:func:`training_images`); a synthetic run
    is sized as its real counterpart; an uncounted dataset leaves the window in steps.
    """
    largest = max(counts.values(), default=0)
    pretrain = config.get("pretrain") or {}
    shared = pretrain.get("params") or {}
    lines = []
    for name, run in (pretrain.get("runs") or {}).items():
        params = {**shared, **(run.get("params") or {})}
        lines.append(_line(f"pretrain {name}", params,
                           counts.get(_counterpart(config, run), 0) or largest))
    subset = _realtune_subset(config, counts)
    if subset:
        recipe, fraction, real = subset
        lines.append(_line(f"realtune ssl ({fraction:g} of {real})", recipe,
                           int(fraction * counts.get(real, 0))))
    return lines


def check_realtune_schedule(config: dict, counts: dict[str, int]) -> None:
    """RealTune's ssl subset must fill a batch: one sentence before any job starts.

    Checked where the real dataset's folder was counted (a toy dataset is checked by the
    job itself, :func:`~synreal.dino.params.check_realtune_data`).
    """
    from synreal.errors import ConfigError

    subset = _realtune_subset(config, counts)
    if not subset or subset[2] not in counts:
        return
    recipe, fraction, real = subset
    batch = int(recipe.get("batch_size", DinoParams.batch_size))
    tuned = int(fraction * counts[real])
    if tuned < batch:
        raise ConfigError(f"realtune.ssl.params.fraction {fraction:g} of {real}'s "
                          f"{counts[real]} training images is {tuned} images, fewer than one "
                          f"batch of {batch} (realtune.ssl.dino.batch_size); raise the fraction "
                          "or lower the batch size.")
