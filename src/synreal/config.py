"""Load and validate a study config before any job is scheduled.

Validation is JSON-schema based (``workflow/schemas/config.schema.yaml``, whose
``description`` fields are the reference documentation), then semantic checks that a schema
cannot express (paths that must exist). Every problem becomes one :class:`ConfigError`
sentence naming the key and what to do; defaults are filled in from the schema.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from synreal.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"


#: libyaml's parser where PyYAML was built with it: the schema takes 0.5 s to parse in pure
#: Python, and every Slurm job reads the Snakefile (and so the schema) twice.
SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_schema(path: Path = SCHEMA_PATH) -> dict:
    """The config JSON schema (a fresh copy: callers may change it)."""
    path = Path(path)
    return copy.deepcopy(_parsed_schema(str(path), path.stat().st_mtime_ns))


@functools.cache
def _parsed_schema(path: str, mtime_ns: int) -> dict:
    """The schema file parsed once per process (and again if the file changes)."""
    return yaml.load(Path(path).read_text(), Loader=SafeLoader)


def _where(error: jsonschema.ValidationError) -> str:
    parts = [str(p) for p in error.absolute_path]
    return ".".join(parts) if parts else "the config's top level"


def _sentence(error: jsonschema.ValidationError) -> str:
    where = _where(error)
    kind, value = error.validator, error.instance
    if kind == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(value) - set(allowed)) if isinstance(value, dict) else []
        name = extra[0] if extra else "?"
        key = f"{where}.{name}" if error.absolute_path else name
        return f"unknown key '{key}'; known keys there: {allowed}. Remove or rename it."
    if kind == "required":
        return f"{where} is missing the required key {error.message.split()[0]}."
    if kind == "enum":
        return f"{where} must be one of {error.validator_value}, not {value!r}."
    if kind == "type":
        return f"{where} must be of type {error.validator_value}, not {value!r}."
    if kind in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        return f"{where} is {value!r} but must satisfy {kind} {error.validator_value}."
    if kind == "oneOf" and isinstance(value, dict) and {"path", "toyworld"} <= set(value):
        return f"{where} has both 'path' and 'toyworld'; give exactly one of them."
    if kind == "oneOf":
        return f"{where} needs exactly one of 'path' (a real dataset) or 'toyworld' (rendered)."
    return f"{where}: {error.message}."


def _fill_defaults(schema: dict, instance: Any, root: dict) -> None:
    """Fill missing keys from schema ``default`` values, recursively (in place).

    A stage's parameter block (a ``$ref`` into ``$defs``) defaults to ``{}`` and is not
    filled field by field: it holds *overrides*, resolved by the stage's dataclass, so a
    run's overrides never mask the study-wide ones with defaults.
    """
    if not isinstance(instance, dict) or schema.get("type") != "object":
        return
    for name, sub in schema.get("properties", {}).items():
        if "$ref" in sub:
            target = root["$defs"][sub["$ref"].rsplit("/", 1)[-1]]
            if name not in instance and "default" in target:
                instance[name] = copy.deepcopy(target["default"])
            continue
        if name not in instance and "default" in sub:
            instance[name] = copy.deepcopy(sub["default"])
        if name in instance:
            _fill_defaults(sub, instance[name], root)
    extra = schema.get("additionalProperties")
    if isinstance(extra, dict):
        for name, value in instance.items():
            if name not in schema.get("properties", {}):
                _fill_defaults(extra, value, root)


def _check_paths(config: dict, base: Path) -> None:
    for name, dataset in config["datasets"].items():
        if "path" in dataset and not (base / dataset["path"]).is_dir():
            raise ConfigError(
                f"datasets.{name}.path: folder {dataset['path']} does not exist; download the "
                f"{dataset['format']} dataset there or fix the path."
            )


def _check_references(config: dict) -> None:
    """Names that must point at a configured dataset (checked before the study is planned)."""
    evaluation = config.get("evaluation")
    if evaluation and evaluation["dataset"] not in config["datasets"]:
        raise ConfigError(f"evaluation.dataset: no dataset called {evaluation['dataset']!r}; "
                          f"use one of the real datasets {sorted(config['datasets'])}.")


def _check_weights(config: dict, base: Path, memo: Path | None = None) -> None:
    """Every weights folder a generator or an audit model loads must hold it, before any job."""
    from synreal.generate.loading import check_weights

    for name, generator in config["generators"].items():
        params = generator.get("params") or {}
        if str(params.get("backend", "sdxl")).startswith("toy"):
            continue
        check_weights(params, base, f"generators.{name}.params")
    if config.get("audit"):  # every audit model the study selects, of its architecture
        from synreal.audit.preflight import check_study

        check_study(config, base, memo)


def replicate_seeds(config: dict) -> tuple[list[int] | None, int, list[str] | None]:
    """The ``replicates`` key as (explicit seeds or None, number of seeds, runs or None = all).

    ``replicates: N`` gives no explicit seeds: replicate ``i`` of a run uses the run's own
    DINO seed plus ``i``, so the first replicate keeps the single-seed key.
    """
    value = config.get("replicates", 1)
    runs = None
    if isinstance(value, dict):
        value, runs = value["seeds"], value.get("runs")
    if isinstance(value, list):
        return [int(s) for s in value], len(value), runs
    return None, int(value), runs


def _check_replicates(config: dict) -> None:
    """Replicates: at least one seed, no seed twice, runs that exist."""
    value = config.get("replicates", 1)
    where = "replicates.seeds" if isinstance(value, dict) else "replicates"
    seeds, count, runs = replicate_seeds(config)
    if seeds is None and count < 1:
        raise ConfigError(f"{where} is {count} but a study needs at least one training seed; "
                          f"set {where}: 1 (one seed) or more, e.g. 3.")
    if seeds is not None and not seeds:
        raise ConfigError(f"{where} is an empty list; list at least one seed, e.g. [0, 1, 2], "
                          "or give the number of seeds.")
    if seeds is not None and len(set(seeds)) != len(seeds):
        twice = sorted({s for s in seeds if seeds.count(s) > 1})
        raise ConfigError(f"{where} lists the seed(s) {twice} more than once; each replicate "
                          f"needs its own seed: list distinct seeds, e.g. "
                          f"{list(range(len(seeds)))}.")
    known = sorted((config.get("pretrain") or {}).get("runs", {}))
    for run in runs or []:
        if run not in known:
            raise ConfigError(f"replicates.runs names {run!r}, which is not a pretraining run; "
                              f"use names under pretrain.runs: {known}.")


def _check_controls(config: dict) -> None:
    """Controls: a real pretraining run to copy, and halves big enough to train on."""
    controls = config.get("controls") or {}
    if not (controls.get("negative") or controls.get("positive") or controls.get("random_init")):
        return
    runs = (config.get("pretrain") or {}).get("runs", {})
    name = controls.get("run", "real")
    run = runs.get(name)
    if run is None or run["source"] != "real":
        real = sorted(n for n, r in runs.items() if r["source"] == "real")
        raise ConfigError(f"controls.run: {name!r} is not a pretraining run with source: real; "
                          f"name one of {real} (the controls split its real dataset and copy "
                          "its recipe).")
    if not (controls.get("negative") or controls.get("positive")):
        return  # the random-init control alone splits no dataset
    dataset = config["datasets"].get(run.get("real", ""), {})
    counts = dataset.get("toyworld")
    if counts:  # rendered: the training split's size is known before any job runs
        per_class = counts.get("train", counts.get("trainval", 0))
        dino = {**(config["pretrain"].get("params") or {}), **(run.get("params") or {})}
        batch = int(dino.get("batch_size", 64))
        from synreal.data.toyworld import BREEDS, COARSE_CLASSES

        classes = len(BREEDS) if dataset["format"] == "oxford_pet" else len(COARSE_CLASSES)
        half = (per_class // 2) * classes
        if per_class < 2 or half < batch:
            raise ConfigError(
                f"controls: the held-out half of datasets.{run['real']}'s training split has "
                f"{half} images ({per_class} per class split in two), fewer than one batch of "
                f"{batch}; render at least {2 * -(-batch // classes)} "
                f"per class (datasets.{run['real']}.toyworld) or lower the batch size.")


def validate_config(config: dict, base: Path | None = None, check_paths: bool = True,
                    weights_memo: Path | None = None) -> dict:
    """Return a validated copy of ``config`` with defaults filled; raise one ConfigError.

    Args:
        base: directory relative paths are resolved against (default: working directory).
        check_paths: also require every dataset path and diffusion weights folder to exist.
        weights_memo: file of the audit weights checks that passed, not repeated while the
            weights are unchanged (:func:`synreal.audit.preflight.check_model`).
    """
    schema = load_schema()
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(e.absolute_path), e.path))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        raise ConfigError(_sentence(best))
    resolved = copy.deepcopy(config)
    _fill_defaults(schema, resolved, schema)
    _check_references(resolved)
    _check_replicates(resolved)
    _check_controls(resolved)
    if check_paths:
        _check_paths(resolved, Path(base or Path.cwd()))
        _check_weights(resolved, Path(base or Path.cwd()), weights_memo)
    return resolved


def load_config(path: Path, check_paths: bool = True) -> dict:
    """Read a YAML study file and validate it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist.")
    try:
        config = yaml.load(path.read_text(), Loader=SafeLoader)
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(config, dict):
        kind = type(config).__name__
        raise ConfigError(f"{path} must hold a mapping of config keys, not {kind}.")
    return validate_config(config, check_paths=check_paths)
