"""Backend registry: ``register`` a factory under a name, ``create(name, ...)`` an instance.

A backend turns a batch of planned images (prompt or source image, seed) into PIL images
at the requested size. Factories import their heavy libraries inside, so registering costs
nothing and ``import synreal.generate`` stays cheap.

Example:
    >>> "toy" in known_backends()
    True
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from synreal.errors import ConfigError

if TYPE_CHECKING:
    from PIL import Image

    from synreal.generate.params import GenerateParams
    from synreal.generate.plan import ImageJob


@dataclass
class Generated:
    """One generated image and the backend-specific columns it adds to the manifest."""

    image: Image.Image
    extra: dict[str, Any] = field(default_factory=dict)


class Backend(Protocol):
    """What :func:`synreal.generate.run.generate_dataset` needs from a generator."""

    def describe(self) -> dict[str, Any]:
        """Columns shared by every image.

        Keys: model_id, model_hash, scheduler, steps, cfg_scale, native_resolution.
        """

    def generate(self, jobs: list[ImageJob], seeds: list[int]) -> list[Generated]:
        """One image per job, at the native resolution, each from its own seed."""


Factory = Callable[["GenerateParams", str], Backend]
_FACTORIES: dict[str, Factory] = {}

#: Modules whose import registers the built-in backends.
BACKEND_MODULES = ("synreal.generate.toy_backend", "synreal.generate.diffusers_backends")


def register(name: str) -> Callable[[Factory], Factory]:
    """Decorator: make ``factory(params, device) -> Backend`` available as ``name``."""
    def wrap(factory: Factory) -> Factory:
        _FACTORIES[name] = factory
        return factory
    return wrap


def _load() -> None:
    for module in BACKEND_MODULES:
        importlib.import_module(module)


def known_backends() -> list[str]:
    """Names of every registered backend."""
    _load()
    return sorted(_FACTORIES)


def create(name: str, params: GenerateParams, device: str = "cpu") -> Backend:
    """Build backend ``name`` for ``params`` on ``device``; an unknown name lists known ones."""
    _load()
    if name not in _FACTORIES:
        raise ConfigError(f"unknown generate backend {name!r}; known backends: "
                          f"{known_backends()}.")
    return _FACTORIES[name](params, device)
