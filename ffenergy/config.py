"""Experiment configs: YAML validated into typed dataclasses before any work starts.

Every error names the field (``model.epochs``), what is wrong, and what is allowed. The allowed
names of datasets, learners, targets, meters and boards come from their registries, so this
module imports no torch, no meter and no loader until a config names one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from ffenergy.data.registry import DATASETS
from ffenergy.firmware.boards import BOARDS
from ffenergy.learners import LEARNERS
from ffenergy.learners.options import LearnerOptionsError, check_learner_options
from ffenergy.measure import MethodConfig
from ffenergy.meters.registry import host_meter_choices
from ffenergy.targets.registry import TARGETS
from ffenergy.vocabulary import all_modes


class ConfigError(ValueError):
    """An invalid config; the message names the field and the fix."""


@dataclass
class DataConfig:
    dataset: str = "mnist"  # a name from ffenergy.data.registry.DATASETS
    source: str = "embedded"  # mnist: embedded | local | download; others: local | download
    path: str | None = None  # local data directory (relative paths: to the config file)
    val_fraction: float = 0.1  # of the training data, held out to calibrate thresholds
    options: dict[str, Any] = field(default_factory=dict)  # loader-specific, see docs/datasets.md


@dataclass
class ModelConfig:
    """The network and how it is trained (defaults: the loeweX/LightFF main-code FF recipe)."""

    hidden: list[int] = field(default_factory=lambda: [1000, 1000, 1000, 1000])
    device: Literal["auto", "cpu", "cuda"] = "auto"  # where to train; auto = cuda when present
    epochs: int = 10
    optimizer: str = "sgd"  # "sgd" (with momentum) or "adam"
    batch_size: int = 100
    lr: float = 1e-3  # layers
    head_lr: float = 1e-2  # exit heads
    weight_decay: float = 3e-4
    head_weight_decay: float = 3e-3
    momentum: float = 0.9
    peer_weight: float = 0.03  # FF peer normalisation
    peer_momentum: float = 0.9
    # learner-specific settings, keyed by the learner's network_id (e.g. {"pepita": {"f_scale": 0.05}});
    # checked on load where the learner registers a torch-free options class (cafo), else when it trains
    options: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass
class PolicyConfig:
    """How the exit thresholds are chosen (ffenergy/learners/policy.py, DESIGN.md section 2)."""

    kind: Literal["grid", "risk", "budget"] = "grid"  # grid: alpha / alpha_select / max_loss_pp below
    epsilon: float = 0.005  # risk: the tolerated loss rate (0.005 = 0.5 pp)
    delta: float = 0.1  # risk: P(loss rate > epsilon) <= delta over the validation sample
    loss: Literal["disagreement", "accuracy"] = "disagreement"  # risk: light != full, or full right and light wrong
    bound: Literal["binomial", "hoeffding-bentkus"] = "binomial"  # risk: the p-value of each test
    family: Literal["per-layer", "alpha"] = "per-layer"  # risk: the path of thresholds that is tested
    fit_fraction: float = 0.5  # risk: of the validation split, shapes the path; the rest certifies it
    steps: int = 50  # quantile levels per layer (per-layer path) and alpha values (alpha path)
    alpha_range: list[float] = field(default_factory=lambda: [-2.0, 4.0])  # the alpha path's first and last alpha
    macs_per_inference: float | None = None  # budget: the mean MACs per inference allowed


@dataclass
class InferenceConfig:
    procedures: list[str] = field(default_factory=lambda: ["mp", "mp-pruned", "op"])  # LEARNERS names
    mp_statistic: Literal["gap", "max"] = "gap"
    op_statistic: Literal["gap", "max"] = "max"
    alpha: float = 1.0  # T_k = mu_k - alpha * sigma_k (the paper's 1.0)
    alpha_select: Literal["fixed", "validation"] = "fixed"  # validation: largest alpha_sweep value whose
    max_loss_pp: float = 0.5  # ... validation accuracy stays within max_loss_pp of the full network
    alpha_sweep: list[float] = field(default_factory=lambda: [0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0])
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    prune_after: int = 1  # mp-pruned: keep only the best candidates after this layer
    prune_keep: int = 2
    batch_size: int = 1024


@dataclass(frozen=True)
class MeasurementConfig(MethodConfig):
    """The ``measurement`` section: the window method (``measure.MethodConfig``: repeats, window length,
    warm-up, idle windows, meter timeout, seed) and how a run feeds it."""

    batch_size: int = 1024  # inference batch inside a measured window
    pool_survivors: bool = False  # light windows pool the rows that stay across batches by depth (throughput mode)
    max_idle_drift: float = 0.05  # warn when idle power moves more than this between consecutive idle windows
    procedures: list[str] = field(default_factory=list)  # empty: every inference procedure

    def method(self) -> MethodConfig:
        """How ``ffenergy run`` (and ``ffenergy.profiler`` by default) sizes and repeats windows: this section's
        method fields, without the run settings."""
        return MethodConfig(**{f.name: getattr(self, f.name) for f in dataclasses.fields(MethodConfig)})


@dataclass
class McuSection:
    """Microcontroller targets (mcu, mcu-sim, mcu-qemu); see hardware/README.md."""

    dtype: Literal["f32", "int8"] = "f32"
    board: str = "nucleo-l476rg"  # target mcu: the board the export must fit
    repeats: int = 10  # inferences inside one trigger window
    max_samples: int = 100  # test samples measured on the device (UART transfers are slow)
    modes: list[str] = field(default_factory=list)  # empty: full, light and every depth-k
    procedures: list[str] = field(default_factory=list)  # empty: inference.procedures
    options: dict[str, Any] = field(default_factory=dict)  # DUT/meter ports, simulator model (targets.mcu.McuConfig)


@dataclass
class CarbonConfig:
    """Grid carbon intensity for gCO2eq per 1,000 inferences (give one of the two, or neither)."""

    country_iso_code: str | None = None  # ISO 3166-1 alpha-3, e.g. FRA (CodeCarbon's energy-mix data)
    grid_intensity_g_per_kwh: float | None = None  # e.g. 475


@dataclass
class ExperimentConfig:
    name: str = "experiment"
    seed: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    inference: InferenceConfig = field(default_factory=InferenceConfig)
    targets: list[str] = field(default_factory=lambda: ["cpu"])
    meter: str = "auto"
    meter_options: dict[str, Any] = field(default_factory=dict)
    measurement: MeasurementConfig = field(default_factory=MeasurementConfig)
    mcu: McuSection = field(default_factory=McuSection)
    carbon: CarbonConfig = field(default_factory=CarbonConfig)
    # where the YAML file was (relative data paths resolve against it); not part of the config itself
    config_dir: Path = field(default=Path("."), init=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        del d["config_dir"]
        return d

    def data_path(self) -> str | None:
        """``data.path`` resolved against the directory of the config file it came from."""
        path = self.data.path
        if path is None or Path(path).is_absolute():
            return path
        return str(self.config_dir / path)

    def hash(self, *sections: str) -> str:
        """Short stable hash of the whole config or of the named top-level sections."""
        d = self.to_dict()
        picked = {k: d[k] for k in sections} if sections else d
        return hashlib.sha256(json.dumps(picked, sort_keys=True).encode()).hexdigest()[:12]


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> ExperimentConfig:
    """Read, validate and resolve a YAML experiment file."""
    path = Path(path)
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path} is a folder; give a YAML file, e.g. experiments/mnist.yaml") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); save it as UTF-8") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot be read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from None
    if raw is None:
        raise ConfigError(
            f"{path} is empty; start from one of the configs in experiments/ (e.g. experiments/mnist.yaml)"
        )
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections (name, data, model, ...)")
    for key, value in (overrides or {}).items():
        raw[key] = value
    cfg = parse_config(raw)
    cfg.config_dir = path.parent  # relative data paths are relative to the config file
    return cfg


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error, not the last value."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            if key in seen:
                raise ConfigError(
                    f"key {key!r} is given twice in one section (line {key_node.start_mark.line + 1}); keep one"
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def config_of_run(manifest: dict[str, Any]) -> ExperimentConfig:
    """The config a run used, from its manifest (relative data paths still resolve)."""
    cfg = parse_config(manifest["config"])
    cfg.config_dir = Path(manifest.get("config_dir", "."))
    return cfg


def resumed_config(run_dir: str | Path, overrides: dict[str, Any] | None = None) -> ExperimentConfig:
    """The config of the run in ``run_dir`` (its manifest holds the resolved config, overrides included)."""
    path = Path(run_dir) / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except (FileNotFoundError, NotADirectoryError):
        raise ConfigError(
            f"--resume {run_dir}: no manifest.json there; give a run directory made by ffenergy run"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"--resume {run_dir}: {path} cannot be read ({exc})") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON ({exc}); the run cannot be resumed") from None
    return config_of_run({**manifest, "config": {**manifest["config"], **(overrides or {})}})


def parse_config(raw: dict[str, Any]) -> ExperimentConfig:
    """Validate a config mapping (types, unknown keys, allowed values, ranges)."""
    cfg = _build(ExperimentConfig, raw, "")
    _check_values(cfg)
    return cfg


def _build(cls: type, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {type(raw).__name__} {raw!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(raw) - set(names))
    if unknown:
        raise ConfigError(f"{_join(where, unknown[0])}: unknown key; allowed keys here: {', '.join(names)}")
    kwargs = {name: _convert(hints[name], raw[name], _join(where, name)) for name in names if name in raw}
    try:
        return cls(**kwargs)
    except ValueError as exc:  # a section that checks itself (measure.MethodConfig)
        raise ConfigError(str(exc)) from None


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _build(tp, value, where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _convert(inner[0], value, where)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not allowed; use one of: {', '.join(map(str, args))}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_convert(args[0], v, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ConfigError(f"{where}: {value!r} is not a finite number; give a finite value")
        return float(value)
    if tp in (int, str, bool) and type(value) is tp:
        return value
    raise ConfigError(f"{where}: expected {getattr(tp, '__name__', tp)}, got {type(value).__name__} {value!r}")


def _check_values(cfg: ExperimentConfig) -> None:
    m, inf, meas = cfg.model, cfg.inference, cfg.measurement
    _require(
        bool(RUN_NAME.fullmatch(cfg.name)),
        "name",
        f"a run name of letters, digits, '.', '_' and '-' (no path separators; got {cfg.name!r})",
    )
    _require(
        bool(m.hidden) and all(0 < h <= MAX_WIDTH for h in m.hidden),
        "model.hidden",
        f"a non-empty list of widths between 1 and {MAX_WIDTH:,}",
    )
    for name in ("epochs", "batch_size"):
        _require(getattr(m, name) > 0, f"model.{name}", "a positive integer")
    for name in ("lr", "head_lr"):
        _require(getattr(m, name) > 0, f"model.{name}", "a positive number")
    _require(m.optimizer in ("sgd", "adam"), "model.optimizer", "sgd or adam")
    _require(0.0 < cfg.data.val_fraction < 1.0, "data.val_fraction", "a fraction in (0, 1), e.g. 0.1")
    _one_of(cfg.data.dataset, DATASETS.names(), "data.dataset")
    _require(bool(inf.procedures), "inference.procedures", f"a non-empty list of {', '.join(LEARNERS.names())}")
    for i, proc in enumerate(inf.procedures):
        _one_of(proc, LEARNERS.names(), f"inference.procedures[{i}]")
        try:
            check_learner_options(m, proc)
        except LearnerOptionsError as exc:
            raise ConfigError(str(exc)) from None
    _require(inf.alpha >= 0, "inference.alpha", "a number >= 0")
    _require(all(a >= 0 for a in inf.alpha_sweep), "inference.alpha_sweep", "numbers >= 0")
    _require(
        inf.alpha_select == "fixed" or bool(inf.alpha_sweep),
        "inference.alpha_sweep",
        "a non-empty list: alpha_select validation picks from it",
    )
    _require(inf.max_loss_pp >= 0, "inference.max_loss_pp", "a number of percentage points >= 0")
    _check_policy(inf.policy)
    _require(
        1 <= inf.prune_after < len(m.hidden),
        "inference.prune_after",
        f"a layer between 1 and {len(m.hidden) - 1} (the network has {len(m.hidden)} layers)",
    )
    _require(
        inf.prune_keep >= 2,
        "inference.prune_keep",
        "an integer >= 2 (with one candidate left its gap is undefined: the host and the firmware would disagree "
        "on when to exit)",
    )
    _require(inf.batch_size > 0, "inference.batch_size", "a positive integer")
    _require(bool(cfg.targets), "targets", f"a non-empty list of {', '.join(TARGETS.names())}")
    for i, target in enumerate(cfg.targets):
        _one_of(target, TARGETS.names(), f"targets[{i}]")
    _one_of(cfg.meter, host_meter_choices(), "meter")
    _require(meas.batch_size > 0, "measurement.batch_size", "a positive integer")
    _require(meas.max_idle_drift > 0, "measurement.max_idle_drift", "a relative change > 0, e.g. 0.05")
    for i, proc in enumerate(meas.procedures):
        _require(
            proc in inf.procedures,
            f"measurement.procedures[{i}]",
            f"one of inference.procedures ({', '.join(inf.procedures)})",
        )
    _check_meter_options(cfg.meter_options)
    _check_carbon(cfg.carbon)
    data_options(cfg.data)
    _check_data_source(cfg.data)
    _check_mcu(cfg)


RUN_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")  # a run directory's name: one path component
MAX_WIDTH = 100_000  # a layer wider than this does not fit a machine's memory next to a 784-wide input


def _check_data_source(data: DataConfig) -> None:
    sources = list(DATASETS.entry(data.dataset).fact("sources"))
    _require(
        data.source in sources, "data.source", f"one of {', '.join(sources)} for {data.dataset} (got {data.source!r})"
    )
    if data.source == "local" and data.path is None:
        raise ConfigError(
            f"data.path: missing; data.source local reads the {data.dataset} files from that folder"
            " (relative to the config file)"
        )


def _check_meter_options(options: dict[str, Any]) -> None:
    """``meter_options`` maps a host meter's name to its keyword options; both checked before any work."""
    from ffenergy.meters.auto import check_meter_options
    from ffenergy.meters.base import MeterUnavailable

    host = [m for m in host_meter_choices() if m not in ("none", "auto")]
    for name, opts in options.items():
        where = f"meter_options.{name}"
        _require(name in host, where, f"a host meter's name as the key: one of {', '.join(host)}")
        _require(isinstance(opts, dict), where, "a mapping of that meter's options, e.g. rapl: {poll_period_s: 0.05}")
        try:
            check_meter_options(name, opts)
        except MeterUnavailable:
            continue  # its module cannot load here; opening the meter will say so
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None


def _check_carbon(c: CarbonConfig) -> None:
    _require(
        c.country_iso_code is None or c.grid_intensity_g_per_kwh is None,
        "carbon",
        "only one of country_iso_code and grid_intensity_g_per_kwh",
    )
    if c.grid_intensity_g_per_kwh is not None:
        _require(
            math.isfinite(c.grid_intensity_g_per_kwh) and c.grid_intensity_g_per_kwh >= 0,
            "carbon.grid_intensity_g_per_kwh",
            "a number of grams per kWh >= 0",
        )
    if c.country_iso_code is not None:
        from ffenergy.meters.base import MeterUnavailable
        from ffenergy.meters.codecarbon_meter import resolve_intensity

        try:
            resolve_intensity(country_iso_code=c.country_iso_code)
        except (ValueError, MeterUnavailable) as exc:
            raise ConfigError(f"carbon.country_iso_code: {str(exc).removeprefix('carbon: ')}") from None


def _check_policy(p: PolicyConfig) -> None:
    where = "inference.policy"
    _require(0 < p.epsilon < 1, f"{where}.epsilon", "a loss rate in (0, 1), e.g. 0.005 for 0.5 pp")
    _require(0 < p.delta < 1, f"{where}.delta", "a probability in (0, 1), e.g. 0.1")
    _require(0 < p.fit_fraction < 1, f"{where}.fit_fraction", "a fraction in (0, 1) of the validation split, e.g. 0.5")
    _require(p.steps >= 2, f"{where}.steps", "an integer >= 2")
    _require(
        len(p.alpha_range) == 2 and p.alpha_range[0] < p.alpha_range[1],
        f"{where}.alpha_range",
        "two numbers [first, last] with first < last, e.g. [-2.0, 4.0]",
    )
    if p.kind == "budget":
        _require(
            p.macs_per_inference is not None and p.macs_per_inference > 0,
            f"{where}.macs_per_inference",
            "a positive number of MACs per inference (kind budget needs it)",
        )
    else:
        _require(
            p.macs_per_inference is None,
            f"{where}.macs_per_inference",
            f"nothing here, or kind: budget (kind {p.kind} does not read it)",
        )


def _check_mcu(cfg: ExperimentConfig) -> None:
    mcu = cfg.mcu
    _require(mcu.repeats >= 1, "mcu.repeats", "an integer >= 1")
    _require(mcu.max_samples >= 1, "mcu.max_samples", "an integer >= 1")
    for i, proc in enumerate(mcu.procedures):
        _require(
            proc in cfg.inference.procedures,
            f"mcu.procedures[{i}]",
            f"one of inference.procedures ({', '.join(cfg.inference.procedures)})",
        )
    n_layers = len(cfg.model.hidden)
    allowed = all_modes(n_layers)
    for i, mode in enumerate(mcu.modes):
        _require(mode in allowed, f"mcu.modes[{i}]", f"one of {', '.join(allowed)}")
    if not any(TARGETS.entry(t).fact("mcu") for t in cfg.targets):
        return
    _one_of(mcu.board, BOARDS.names(), "mcu.board")
    from ffenergy.targets.mcu_config import McuConfig  # only MCU runs pay for its imports

    fields = sorted({f.name for f in dataclasses.fields(McuConfig)} - {"target", "firmware"})
    for key in mcu.options:
        _require(key in fields, f"mcu.options.{key}", f"a known option: {', '.join(fields)}")


def data_options(data: DataConfig) -> Any:
    """The loader's typed ``Options`` for ``data.options`` (validated)."""
    options = _build(DATASETS.get(data.dataset).Options, data.options, "data.options")
    try:
        options.validate()
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    return options


def _one_of(value: str, names: list[str], where: str) -> None:
    _require(value in names, where, f"one of {', '.join(names)} (got {value!r})")


def _require(ok: bool, where: str, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{where}: invalid value; use {allowed}")


def _join(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name
