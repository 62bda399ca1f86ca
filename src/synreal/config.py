"""Load and validate a study config before any job is scheduled.

Validation is JSON-schema based (``workflow/schemas/config.schema.yaml``, whose
``description`` fields are the reference documentation), then semantic checks that a schema
cannot express (paths that must exist). Every problem becomes one :class:`ConfigError`
sentence naming the key and what to do; defaults are filled in from the schema.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from synreal.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = REPO_ROOT / "workflow" / "schemas" / "config.schema.yaml"


def load_schema(path: Path = SCHEMA_PATH) -> dict:
    """The config JSON schema."""
    return yaml.safe_load(Path(path).read_text())


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


def _check_weights(config: dict, base: Path) -> None:
    """Every diffusion generator's local weights folder must exist before any job starts."""
    from synreal.generate.loading import resolve_model_path

    for name, generator in config["generators"].items():
        params = generator.get("params") or {}
        if str(params.get("backend", "sdxl")).startswith("toy"):
            continue
        checks = [("model_path", "model_id", "stabilityai/stable-diffusion-xl-base-1.0")]
        if params.get("use_refiner"):
            checks.append(("refiner_path", "refiner_id",
                           "stabilityai/stable-diffusion-xl-refiner-1.0"))
        for key, id_key, default_id in checks:
            path = params.get(key)
            try:
                resolve_model_path(base / path if path else None,
                                   params.get(id_key, default_id), key)
            except ConfigError as error:
                raise ConfigError(f"generators.{name}.params.{key}: {error}") from None


def validate_config(config: dict, base: Path | None = None, check_paths: bool = True) -> dict:
    """Return a validated copy of ``config`` with defaults filled; raise one ConfigError.

    Args:
        base: directory relative paths are resolved against (default: working directory).
        check_paths: also require every dataset path and diffusion weights folder to exist.
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
    if check_paths:
        _check_paths(resolved, Path(base or Path.cwd()))
        _check_weights(resolved, Path(base or Path.cwd()))
    return resolved


def load_config(path: Path, check_paths: bool = True) -> dict:
    """Read a YAML study file and validate it."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {path} does not exist.")
    try:
        config = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    if not isinstance(config, dict):
        kind = type(config).__name__
        raise ConfigError(f"{path} must hold a mapping of config keys, not {kind}.")
    return validate_config(config, check_paths=check_paths)
