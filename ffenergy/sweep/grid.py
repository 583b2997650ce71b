"""Sweep files: a base config and a grid of dotted config keys, expanded into validated points.

A sweep file (YAML)::

    base: tiny.yaml            # the experiment config every point starts from (relative to this file)
    name: tiny-grid            # optional; default: the sweep file's name
    retries: 2                 # optional; attempts after a point's first failure (default 2)
    grid:                      # dotted config keys, each with the list of its values
      seed: [0, 1, 2]
      targets: [[cpu], [mcu-sim]]

The points are the cartesian product of the grid, in the order written (the last key varies
fastest). Every point's config is validated with :func:`ffenergy.config.parse_config` before
anything runs; an invalid one is reported with its point id, its grid values and the field.
"""

from __future__ import annotations

import copy
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ffenergy.config import ConfigError, ExperimentConfig, parse_config

SWEEP_KEYS = ("base", "name", "retries", "grid")


class SweepError(ValueError):
    """An invalid sweep file or sweep directory; the message names the point or key and the fix."""


@dataclass(frozen=True)
class Point:
    """One point of the grid: its id, its grid values and the full config mapping it runs."""

    id: str
    values: dict[str, Any]
    config: dict[str, Any]
    config_dir: str  # the base config's folder: relative data paths resolve against it

    def experiment_config(self) -> ExperimentConfig:
        cfg = parse_config(copy.deepcopy(self.config))
        cfg.config_dir = Path(self.config_dir)
        return cfg

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "values": self.values, "config": self.config, "config_dir": self.config_dir}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Point:
        return cls(d["id"], d["values"], d["config"], d["config_dir"])


@dataclass(frozen=True)
class Sweep:
    name: str
    keys: list[str]  # the grid's dotted keys, in order
    points: list[Point]
    retries: int


def load_sweep(path: str | Path) -> Sweep:
    """Read a sweep file, expand its grid and validate every point's config."""
    path = Path(path)
    raw = _read_yaml(path, "sweep file")
    if not isinstance(raw, dict):
        raise SweepError(f"{path}: the top level must be a mapping with {', '.join(SWEEP_KEYS)}")
    unknown = sorted(set(raw) - set(SWEEP_KEYS))
    if unknown:
        raise SweepError(f"{path}: {unknown[0]}: unknown key; allowed keys: {', '.join(SWEEP_KEYS)}")
    if not isinstance(raw.get("base"), str):
        raise SweepError(f"{path}: base: missing; name the experiment config every point starts from (e.g. tiny.yaml)")
    grid = raw.get("grid")
    if not isinstance(grid, dict) or not grid:
        raise SweepError(f"{path}: grid: give a mapping of dotted config keys to lists of values (e.g. seed: [0, 1])")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise SweepError(f"{path}: grid.{key}: expected a non-empty list of values, got {values!r}")
    retries = raw.get("retries", 2)
    if type(retries) is not int or retries < 0:
        raise SweepError(f"{path}: retries: expected an integer >= 0, got {retries!r}")
    base_path = path.parent / raw["base"]
    base = _read_yaml(base_path, "base config")
    if not isinstance(base, dict):
        raise SweepError(f"{base_path}: the base config's top level must be a mapping of sections")
    name = raw.get("name", path.stem)
    if not isinstance(name, str) or not name:
        raise SweepError(f"{path}: name: expected a non-empty string, got {name!r}")
    points = expand(base, grid, str(base_path.parent.resolve()))  # the same from any working directory
    return Sweep(name, list(grid), points, retries)


def expand(base: dict[str, Any], grid: dict[str, list[Any]], config_dir: str) -> list[Point]:
    """The cartesian product of ``grid`` over ``base``, each point's config validated."""
    keys = list(grid)
    points = []
    for index, combo in enumerate(itertools.product(*(grid[k] for k in keys))):
        point_id = f"p{index:03d}"
        values = dict(zip(keys, combo))
        config = copy.deepcopy(base)
        for key, value in values.items():
            _set_dotted(config, key, copy.deepcopy(value), point_id)
        config["name"] = f"{base.get('name', 'experiment')}-{point_id}"
        try:
            parse_config(copy.deepcopy(config))
        except ConfigError as exc:
            raise SweepError(f"point {point_id} ({_describe(values)}): {exc}") from None
        points.append(Point(point_id, values, config, config_dir))
    return points


def _set_dotted(config: dict[str, Any], key: str, value: Any, point_id: str) -> None:
    *parents, leaf = key.split(".")
    node = config
    for i, part in enumerate(parents):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            where = ".".join(parents[: i + 1])
            raise SweepError(
                f"point {point_id}: grid key {key}: {where} is {child!r} in the base config, not a section"
            )
        node = child
    node[leaf] = value


def _describe(values: dict[str, Any]) -> str:
    return ", ".join(f"{k}={json.dumps(v)}" for k, v in values.items())


def _read_yaml(path: Path, what: str) -> Any:
    try:
        return yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SweepError(f"{what} {path} not found") from None
    except yaml.YAMLError as exc:
        raise SweepError(f"{path} is not valid YAML: {exc}") from None
