"""Learner-specific settings, ``model.options.<network_id>``: torch-free, so configs check them on load.

A learner's options are a dataclass with ``validate()`` (raising ``LearnerOptionsError``).
A learner whose dataclass lives in a torch-free module registers it as the ``options`` fact of
its registry entry (``"module:Class"``, the class with a ``network_id`` ClassVar); the config
loader then builds and validates it before any work (``check_learner_options``).
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import TYPE_CHECKING, Protocol, TypeVar

from ffenergy.learners import LEARNERS

if TYPE_CHECKING:
    from ffenergy.config import ModelConfig


class LearnerOptionsError(ValueError):
    """``model.options.<network_id>`` is invalid; the message names the key and the fix."""


class _Options(Protocol):
    def validate(self) -> None: ...


O = TypeVar("O", bound=_Options)


def learner_options(cls: type[O], model: ModelConfig, network_id: str) -> O:
    """The dataclass ``cls`` built from ``model.options[network_id]`` (defaults for what is absent),
    validated."""
    raw = model.options.get(network_id, {})
    names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise LearnerOptionsError(f"model.options.{network_id}.{unknown[0]}: unknown key; allowed: {', '.join(names)}")
    try:
        options = cls(**raw)
    except TypeError as exc:
        raise LearnerOptionsError(f"model.options.{network_id}: {exc}") from None
    options.validate()
    return options


def check_learner_options(model: ModelConfig, procedure: str) -> None:
    """Build and validate ``procedure``'s options if its registry entry names their class (else nothing)."""
    path = LEARNERS.entry(procedure).fact("options")
    if path is None:
        return
    module, _, name = path.partition(":")
    cls = getattr(importlib.import_module(module), name)
    learner_options(cls, model, cls.network_id)


def is_number(value: object) -> bool:
    """An int or float from YAML (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_integer(value: object) -> bool:
    """An int from YAML (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool)
