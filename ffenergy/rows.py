"""Typed rows and their CSV cells: a row dataclass's fields are its file's columns, in order, and each
field's type says how its cell is written and read back.

Types understood: ``str``, ``int``, ``bool``, ``float``, ``tuple[float, ...]`` (cells ``a;b;c``), each
optionally ``| None`` (an empty cell). A field with a default may be absent from a file (a column added
later) and its empty cells read as the default; a field without one must be in the header.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import types
import typing
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

Row = TypeVar("Row")


class TableError(ValueError):
    """A CSV file cannot be read as its rows; the message names the file, the line and the fix."""


@dataclass(frozen=True)
class Column:
    """One field of a row type as a CSV column."""

    name: str
    kind: type  # str, int, bool, float or tuple (of floats)
    optional: bool  # ``| None``: an empty cell is None
    default: Any  # dataclasses.MISSING when the column is required

    @property
    def required(self) -> bool:
        return self.default is dataclasses.MISSING


def schema(row: type) -> tuple[Column, ...]:
    """The columns of a row dataclass, in field order."""
    if row not in _SCHEMAS:
        _SCHEMAS[row] = _schema(row)
    return _SCHEMAS[row]


_SCHEMAS: dict[type, tuple[Column, ...]] = {}


def _schema(row: type) -> tuple[Column, ...]:
    hints = typing.get_type_hints(row)
    out = []
    for f in dataclasses.fields(row):
        kind, optional = _kind(hints[f.name])
        default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
        out.append(Column(f.name, kind, optional, default))
    return tuple(out)


def columns(row: type) -> list[str]:
    """A row dataclass's CSV header: its field names in order."""
    return [c.name for c in schema(row)]


def _kind(hint: Any) -> tuple[type, bool]:
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        inner = [a for a in args if a is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"unsupported column type {hint}")
        return _kind(inner[0])[0], True
    if typing.get_origin(hint) is tuple and args == (float, Ellipsis):
        return tuple, False
    if hint in (str, int, bool, float):
        return hint, False
    raise TypeError(f"unsupported column type {hint}")


def cell(value: Any) -> Any:
    """A value as written into a CSV cell (None empty, bools 0/1, floats to 9 digits, tuples ``a;b``)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return f"{value:.9g}"
    if isinstance(value, tuple):
        return ";".join(f"{v:.6g}" for v in value)
    return value


def as_dict(row: Any) -> dict[str, Any]:
    """A row's cells by column (a row dataclass, or a mapping written as it is)."""
    if dataclasses.is_dataclass(row) and not isinstance(row, type):
        return {f.name: getattr(row, f.name) for f in dataclasses.fields(row)}
    return dict(row)


class Table:
    """A CSV read into string columns (a torn last line from an interrupted run skipped); the numeric
    accessors and :meth:`rows` name the line of a bad value."""

    def __init__(self, path: Path, required: Collection[str]):
        self.path = Path(path)
        try:
            with open(path, newline="", encoding="utf-8") as fh:
                text = fh.read()
        except UnicodeDecodeError:
            raise TableError(
                f"{path}: not UTF-8 text; the file is corrupted -- restore it or re-run that stage"
            ) from None
        lines = text.splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            lines = lines[:-1]
        records = list(csv.reader(lines))
        if not records:
            raise TableError(f"{path}: empty file (no header row); delete it or re-run that stage")
        self.header = [h.strip() for h in records[0]]
        absent = [c for c in required if c not in self.header]
        if absent:
            raise TableError(
                f"{path}: column(s) {', '.join(absent)} missing from the header; the file is not "
                f"in the result format (expected at least: {', '.join(required)})"
            )
        body = records[1:]
        width = len(self.header)
        for i, record in enumerate(body):
            if len(record) != width:
                raise TableError(
                    f"{path}: line {i + 2} has {len(record)} fields, the header has {width}; "
                    "the file is corrupted -- fix or delete that line"
                )
        self.n = len(body)
        cols = list(zip(*body)) if body else [()] * width
        self._columns = {name: list(col) for name, col in zip(self.header, cols)}

    def has(self, name: str) -> bool:
        return name in self._columns

    def text(self, name: str) -> list[str]:
        return self._columns.get(name, [""] * self.n)

    def floats(self, name: str, optional: bool = False) -> np.ndarray:
        """A numeric column as an array (empty cells NaN where ``optional``)."""
        values = self.text(name)
        try:
            return np.array([v if v != "" or not optional else "nan" for v in values], dtype=float)
        except ValueError:
            for i, v in enumerate(values):
                if not (v == "" and optional):
                    self._number(v, name, i)
            raise

    def rows(self, row: type[Row], may_be_empty: Collection[str] = ()) -> list[Row]:
        """The file's rows as ``row`` instances, each cell parsed by its field's type; a float column
        named in ``may_be_empty`` reads an empty cell as NaN."""
        parsed: dict[str, list[Any]] = {}
        for col in schema(row):
            if col.required and not self.has(col.name):
                raise TableError(f"{self.path}: column {col.name} missing from the header")
            cells = self.text(col.name)
            parsed[col.name] = [self._parse(col, v, i, col.name in may_be_empty) for i, v in enumerate(cells)]
        return [row(**{name: values[i] for name, values in parsed.items()}) for i in range(self.n)]

    def _parse(self, col: Column, text: str, i: int, empty_ok: bool) -> Any:
        if text == "":
            if not col.required:
                return col.default
            if col.optional:
                return None
            if col.kind is float and empty_ok:
                return math.nan
            if col.kind is str:
                raise TableError(f"{self.path}: line {i + 2}: column {col.name!r} is empty")
            self._number(text, col.name, i)
        if col.kind is str:
            return text
        if col.kind is tuple:
            try:
                return tuple(float(p) for p in text.split(";"))
            except ValueError:
                raise TableError(
                    f"{self.path}: line {i + 2}, column {col.name!r}: {text!r} is not 'p1;p2;...' "
                    "(numbers separated by ';')"
                ) from None
        number = self._number(text, col.name, i)
        return number if col.kind is float else col.kind(int(number))

    def _number(self, text: str, name: str, i: int) -> float:
        try:
            return float(text)
        except ValueError:
            raise TableError(
                f"{self.path}: line {i + 2}, column {name!r}: {text!r} is not a number"
                + ("" if text else " (this column may not be empty)")
            ) from None


def read_table(path: Path, row: type[Row], may_be_empty: Collection[str] = ()) -> list[Row]:
    """The rows of a result CSV as ``row`` instances (see :meth:`Table.rows`)."""
    required = [c.name for c in schema(row) if c.required]
    return Table(path, required).rows(row, may_be_empty)
