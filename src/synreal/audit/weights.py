"""Local weights for model-backed measures: resolve the path or say what to download.

Audits never reach the network. A detector or classifier is configured by a local path;
when it is unset or absent the error names the key, the path and the model to fetch.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from synreal.errors import ConfigError


def require_weights(path: str | Path | None, key: str, model_id: str,
                    expect: str = "folder or file") -> Path:
    """``path`` as a :class:`Path` if it exists, else a ConfigError naming what to download.

    Args:
        path: the configured local path (may be None).
        key: the audit parameter that holds it, e.g. ``scale_weights``.
        model_id: what to download (a Hugging Face id or a file name).
        expect: what ``path`` should be, for the message.
    """
    hint = (f"download {model_id} on a machine with internet (e.g. `hf download {model_id} "
            f"--local-dir <folder>`), copy it here and set audit {key} to that {expect}")
    if not path:
        raise ConfigError(f"audit {key} is not set; {hint}.")
    resolved = Path(path).expanduser()
    if not resolved.exists():
        raise ConfigError(f"audit {key} {resolved} does not exist; {hint}.")
    return resolved


def require_module(name: str, package: str, backend: str) -> ModuleType:
    """Import ``name`` or raise a ConfigError saying which package the backend needs."""
    try:
        return importlib.import_module(name)
    except ImportError:
        raise ConfigError(f"audit backend {backend!r} needs the {package!r} package, which is "
                          f"not installed; `pip install {package}` or choose another "
                          "backend.") from None


def load_pretrained_strict(model_class: type, folder: Path, key: str, expect_type: str):
    """``model_class.from_pretrained(folder)`` offline, refusing weights that do not fit.

    transformers only warns about missing or unexpected tensors (and leaves missing ones
    random); here any of them, a shape mismatch or another ``model_type`` is a ConfigError
    naming ``key``.
    """
    import json

    config = Path(folder) / "config.json"
    found = json.loads(config.read_text()).get("model_type") if config.is_file() else None
    if found != expect_type:
        raise ConfigError(f"audit {key} {folder} holds model_type {found!r}, not "
                          f"{expect_type!r}; set it to a save_pretrained folder of that model.")
    try:
        model, info = model_class.from_pretrained(folder, local_files_only=True,
                                                  output_loading_info=True)
    except (OSError, RuntimeError, ValueError) as error:
        raise ConfigError(f"audit {key} {folder} could not be loaded as {expect_type} "
                          f"({str(error).splitlines()[0]}); set it to a save_pretrained "
                          "folder of that model.") from None
    bad = {k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys",
                                                   "mismatched_keys") and v}
    if bad:
        kind, names = next(iter(bad.items()))
        raise ConfigError(f"audit {key} {folder}: its weights do not match the {expect_type} "
                          f"architecture in its config.json ({kind.replace('_', ' ')}, e.g. "
                          f"{sorted(map(str, names))[0]!r}); download the model again.")
    return model
