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
