"""One registry per kind of thing (meters, targets, boards, datasets, learners).

Entries are registered by name with a ``"module:attribute"`` (or ``"module"``) path, so listing the names (CLI
choices, config validation, ``ffenergy meters``) imports nothing heavy; the object is imported
the first time it is used. Tests and plug-ins may register objects directly.

Plug-ins: a registry with an entry-point ``group`` (``ffenergy.meters``, ``ffenergy.learners``, ...)
also lists the entry points installed packages declare in that group, the first time it is asked
for its names. An entry point names a :class:`Plugin` (the object's path, a summary and the facts
the registry lists without importing it; keep the module that holds it light) or the object
itself. A plug-in that fails to load, holds the wrong kind of object, or takes a name already
taken is refused with one logged line naming its package; everything else keeps working.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")
BUILT_IN = "built-in"

log = logging.getLogger("ffenergy.registry")


class UnknownName(ValueError):
    """A name that no entry of the registry has; the message lists the known ones."""


class PluginError(ImportError):
    """A plug-in's object cannot be imported or is not the kind of thing its registry holds."""


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered thing: its name, where it lives, a one-line summary and fixed facts.

    ``origin`` is ``"built-in"`` or the distribution (``"package 1.0"``) whose entry point added it.
    """

    name: str
    target: str | T  # "module:attribute", or the object itself
    summary: str = ""
    facts: tuple[tuple[str, Any], ...] = ()
    origin: str = BUILT_IN

    def fact(self, key: str, default: Any = None) -> Any:
        return dict(self.facts).get(key, default)


@dataclass(frozen=True)
class Plugin:
    """What a plug-in's entry point names: ``target`` as in :meth:`Registry.register` (a
    ``"module:attribute"`` path, imported on first use), a one-line summary and the facts the registry
    documents (a meter's ``provenance`` and ``host``, a learner's ``options``, a target's ``device``)."""

    target: Any
    summary: str = ""
    facts: Mapping[str, Any] = field(default_factory=dict)


def entry_points(group: str) -> list[importlib.metadata.EntryPoint]:
    """The entry points installed distributions declare in ``group``."""
    return list(importlib.metadata.entry_points(group=group))


def _origin(ep: importlib.metadata.EntryPoint) -> str:
    dist = ep.dist
    return f"{dist.name} {dist.version}" if dist is not None else f"module {ep.module}"


class Registry(Generic[T]):
    """Names -> lazily imported objects of one kind (plus the plug-ins of entry-point ``group``).

    ``check`` is called on an object the first time it is imported and raises ``TypeError`` when
    it is not of the registry's kind, so a plug-in naming the wrong thing fails with its package named.
    """

    def __init__(self, kind: str, group: str | None = None, check: Callable[[Any], None] | None = None):
        self.kind = kind
        self.group = group
        self.check = check
        self._entries: dict[str, Entry[T]] = {}
        self._loaded: dict[str, T] = {}
        self._refused: dict[str, str] = {}
        self._scanned = group is None

    def register(self, name: str, target: str | T, summary: str = "", **facts: Any) -> None:
        """Add ``name``; registering a name twice is an error (unregister it first)."""
        self._add(Entry(name, target, summary, tuple(facts.items())))

    def _add(self, entry: Entry[T]) -> None:
        if entry.name in self._entries:
            raise ValueError(f"{self.kind} {entry.name!r} is already registered")
        self._entries[entry.name] = entry

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)
        self._loaded.pop(name, None)

    def _plugins(self) -> dict[str, Entry[T]]:
        """Every entry, with the plug-ins of ``group`` read on the first call."""
        if not self._scanned:
            self._scanned = True
            for ep in entry_points(self.group or ""):
                self._add_plugin(ep)
        return self._entries

    def _add_plugin(self, ep: importlib.metadata.EntryPoint) -> None:
        origin = _origin(ep)
        taken = self._entries.get(ep.name)
        if taken is not None:
            where = "a built-in one" if taken.origin == BUILT_IN else f"the one from {taken.origin}"
            self._refuse(ep.name, origin, f"the name is taken by {where}; rename the entry point in {self.group}")
            return
        try:
            declared = ep.load()
        except Exception as exc:
            self._refuse(ep.name, origin, f"cannot load {ep.value}: {type(exc).__name__}: {exc}")
            return
        if isinstance(declared, Plugin):
            entry: Entry[T] = Entry(ep.name, declared.target, declared.summary, tuple(declared.facts.items()), origin)
        else:
            summary = (getattr(declared, "__doc__", None) or "").strip().split("\n")[0]
            entry = Entry(ep.name, declared, summary, (), origin)
        self._entries[ep.name] = entry

    def _refuse(self, name: str, origin: str, why: str) -> None:
        message = f"plug-in {self.kind} {name!r} from {origin} refused: {why}"
        self._refused[name] = message
        log.warning("%s", message)

    def refused(self) -> dict[str, str]:
        """Plug-ins of ``group`` that were refused: name -> the line that says why (and which package)."""
        self._plugins()
        return dict(self._refused)

    def names(self) -> list[str]:
        return list(self._plugins())

    def entry(self, name: str) -> Entry[T]:
        entries = self._plugins()
        try:
            return entries[name]
        except KeyError:
            refused = f" ({self._refused[name]})" if name in self._refused else ""
            raise UnknownName(f"unknown {self.kind} {name!r}{refused}; use one of {', '.join(entries)}") from None

    def get(self, name: str) -> T:
        """The registered object, imported on first use."""
        if name not in self._loaded:
            entry = self.entry(name)
            target: Any = entry.target
            if entry.origin == BUILT_IN:
                self._loaded[name] = self._import(target) if isinstance(target, str) else target
            else:
                self._loaded[name] = self._load_plugin(entry)
        return self._loaded[name]

    @staticmethod
    def _import(target: str) -> Any:
        module, _, attribute = target.partition(":")
        imported = importlib.import_module(module)
        return getattr(imported, attribute) if attribute else imported

    def _load_plugin(self, entry: Entry[T]) -> Any:
        where = f"plug-in {self.kind} {entry.name!r} from {entry.origin}"
        try:
            obj = self._import(entry.target) if isinstance(entry.target, str) else entry.target
        except Exception as exc:
            raise PluginError(f"{where}: cannot import {entry.target}: {type(exc).__name__}: {exc}") from exc
        if self.check is not None:
            try:
                self.check(obj)
            except TypeError as exc:
                raise PluginError(f"{where}: {exc}") from exc
        return obj

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._plugins()

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(list(self._plugins().values()))
