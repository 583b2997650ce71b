"""One registry per kind of thing (meters, targets, boards, datasets, learners).

Entries are registered by name with a ``"module:attribute"`` (or ``"module"``) path, so listing the names (CLI
choices, config validation, ``ffenergy meters``) imports nothing heavy; the object is imported
the first time it is used. Tests and plug-ins may register objects directly.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class UnknownName(ValueError):
    """A name that no entry of the registry has; the message lists the known ones."""


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered thing: its name, where it lives, a one-line summary and fixed facts."""

    name: str
    target: str | T  # "module:attribute", or the object itself
    summary: str = ""
    facts: tuple[tuple[str, Any], ...] = ()

    def fact(self, key: str, default: Any = None) -> Any:
        return dict(self.facts).get(key, default)


class Registry(Generic[T]):
    """Names -> lazily imported objects of one kind."""

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}
        self._loaded: dict[str, T] = {}

    def register(self, name: str, target: str | T, summary: str = "", **facts: Any) -> None:
        """Add ``name``; registering a name twice is an error (unregister it first)."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = Entry(name, target, summary, tuple(facts.items()))

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)
        self._loaded.pop(name, None)

    def names(self) -> list[str]:
        return list(self._entries)

    def entry(self, name: str) -> Entry[T]:
        try:
            return self._entries[name]
        except KeyError:
            raise UnknownName(f"unknown {self.kind} {name!r}; use one of {', '.join(self._entries)}") from None

    def get(self, name: str) -> T:
        """The registered object, imported on first use."""
        if name not in self._loaded:
            target: Any = self.entry(name).target
            if isinstance(target, str):
                module, _, attribute = target.partition(":")
                imported = importlib.import_module(module)
                target = getattr(imported, attribute) if attribute else imported
            self._loaded[name] = target
        return self._loaded[name]

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(list(self._entries.values()))
