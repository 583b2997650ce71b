"""MIT-BIH Arrhythmia: heartbeats segmented around annotated R peaks, 5 AAMI classes.

Pipeline per record (defaults reproduce the Kachuee et al. 2018 input format):
1. read the header; check the sampling rate (``fs_expected``) and find the channel by name;
2. read that channel (physical units, mV) and resample it to ``resample_hz``;
3. for every beat annotation whose symbol has an AAMI class, cut ``beat_length`` samples with
   the R peak at index ``pre_r`` (default 62 before + 125 from the R peak at 125 Hz, i.e.
   0.50 s before and 1.0 s after; beats too close to the record ends are dropped and counted);
4. scale each beat to [0, 1] (``normalize: minmax``).
Non-beat annotations (rhythm, noise, ``+``, ``~``, ``|``, ``x`` ...) are skipped.

The per-record beats are cached as one ``.npz`` keyed by every preprocessing option and the
record files' sizes and mtimes; splits and balancing are recomputed from the seed on each call.
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from math import gcd
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
from scipy.signal import resample_poly

from ffenergy.data.base import DataError, Dataset, require_option
from ffenergy.data.splits import (
    cache_key,
    cache_root,
    cached_arrays,
    check_fraction,
    class_counts,
    require_online,
    stratified_split,
    undersample,
)

if TYPE_CHECKING:
    import wfdb


def _require(module: str) -> ModuleType:
    """``module`` (wfdb), imported on first use: it comes with the optional extra ``ffenergy[ecg]``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        msg = f"MIT-BIH needs the {module} package, which is not installed: pip install 'ffenergy[ecg]'"
        raise DataError(msg) from None


CLASS_NAMES = ["N", "S", "V", "F", "Q"]
AAMI = {
    **dict.fromkeys("NLRej", 0),
    **dict.fromkeys("AaJS", 1),
    **dict.fromkeys("VE", 2),
    "F": 3,
    **dict.fromkeys("/fQ", 4),
}
PACED = ["102", "104", "107", "217"]
DS1 = [
    "101",
    "106",
    "108",
    "109",
    "112",
    "114",
    "115",
    "116",
    "118",
    "119",
    "122",
    "124",
    "201",
    "203",
    "205",
    "207",
    "208",
    "209",
    "215",
    "220",
    "223",
    "230",
]
DS2 = [
    "100",
    "103",
    "105",
    "111",
    "113",
    "117",
    "121",
    "123",
    "200",
    "202",
    "210",
    "212",
    "213",
    "214",
    "219",
    "221",
    "222",
    "228",
    "231",
    "232",
    "233",
    "234",
]
SPLITS = ("random", "inter-patient")
BALANCES = ("none", "undersample")
NORMALIZATIONS = ("minmax", "none")
ATTRIBUTION = (
    "MIT-BIH Arrhythmia Database (PhysioNet mitdb 1.0.0, ODC-By 1.0); Moody & Mark, IEEE EMB "
    "Mag 20(3):45-50, 2001; Goldberger et al., Circulation 101(23):e215-e220, 2000"
)


@dataclass(frozen=True)
class Options:
    """MIT-BIH loader options (YAML ``data.options``)."""

    records: list[str] = field(default_factory=list)
    """Record names to use, e.g. ["100", "101"]; empty = every record in the directory's
    RECORDS file (or every ``*.hea``), minus the paced ones when ``exclude_paced``."""
    exclude_paced: bool = True
    """Drop the paced records 102, 104, 107 and 217 (AAMI recommendation)."""
    channel: str = "MLII"
    """Signal name to read from each record header."""
    fs_expected: int = 360
    """Sampling rate every header must state, in Hz (MIT-BIH: 360)."""
    resample_hz: int = 125
    """Resample to this rate before cutting beats; 0 keeps the native rate."""
    beat_length: int = 187
    """Samples per beat, at the (re)sampled rate."""
    pre_r: int = 62
    """Samples before the R peak in each beat window (the R peak sits at this index)."""
    normalize: str = "minmax"
    """``minmax``: scale each beat to [0, 1]; ``none``: keep millivolts."""
    split: str = "random"
    """``random``: stratified beat-level train/test split (what the paper's numbers imply);
    ``inter-patient``: train on DS1 records, test on DS2 records (de Chazal et al. 2004)."""
    test_fraction: float = 0.2
    """Share of beats in the test split for ``split: random`` (Kachuee: 21892 of 109446)."""
    balance: str = "none"
    """Training-split balancing: ``none``, or ``undersample`` every class to at most
    ``balance_per_class`` beats (in practice this cuts N and keeps the rare classes whole)."""
    balance_per_class: int = 0
    """Per-class cap for ``balance: undersample`` (must be >= 1 then)."""
    cache_dir: str = ""
    """Where the processed-beat cache lives; empty = $FFENERGY_CACHE or ~/.cache/ffenergy."""
    use_cache: bool = True
    """Read/write the processed-beat cache."""

    def validate(self) -> None:
        require_option("split", self.split, SPLITS)
        require_option("balance", self.balance, BALANCES)
        require_option("normalize", self.normalize, NORMALIZATIONS)
        if self.balance == "undersample" and self.balance_per_class < 1:
            raise ValueError(
                "data.options.balance_per_class: must be >= 1 with balance: undersample; set it, e.g. 5000"
            )
        for name in ("fs_expected", "beat_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"data.options.{name}: {getattr(self, name)} must be >= 1; use a positive integer")
        if self.resample_hz < 0:
            raise ValueError(
                f"data.options.resample_hz: {self.resample_hz} is negative; use 0 (no resampling) or a rate in Hz"
            )
        if not 0 <= self.pre_r < self.beat_length:
            raise ValueError(
                f"data.options.pre_r: {self.pre_r} must be in [0, beat_length={self.beat_length}); "
                "it is the R-peak index inside the beat"
            )
        try:
            check_fraction("data.options.test_fraction", self.test_fraction, allow_zero=False)
        except ValueError as exc:
            raise ValueError(f"{exc} (share of beats held out for test)") from None
        if not self.channel:
            raise ValueError("data.options.channel: empty; name a signal, e.g. MLII")


def load(source: str, path: Path | None, val_fraction: float, seed: int, options: Options) -> Dataset:
    """Load MIT-BIH beats from a local WFDB directory (``local``) or PhysioNet (``download``).

    ``val_fraction`` is the share of the training beats (after the test split) held out,
    stratified by class, for threshold calibration.
    """
    options.validate()
    check_fraction("val_fraction", val_fraction)
    root = _resolve_source(source, path, options)
    records = select_records(root, options)
    started = time.perf_counter()
    beats, cache_hit = load_beats(root, records, options)
    load_s = time.perf_counter() - started
    x, y, rec = beats["x"], beats["y"], beats["record"]

    if options.split == "random":
        train_idx, test_idx = stratified_split(y, options.test_fraction, seed)
        split_facts: dict[str, object] = {"test_fraction": options.test_fraction}
    else:
        in_ds1 = np.isin(rec, DS1)
        train_idx, test_idx = np.flatnonzero(in_ds1), np.flatnonzero(~in_ds1)
        split_facts = {
            "train_records": sorted(set(records) & set(DS1)),
            "test_records": sorted(set(records) & set(DS2)),
        }
    fit_rel, val_rel = stratified_split(y[train_idx], val_fraction, seed + 1)
    fit_idx, val_idx = train_idx[fit_rel], train_idx[val_rel]
    if options.balance == "undersample":
        fit_idx = fit_idx[undersample(y[fit_idx], options.balance_per_class, seed + 2)]

    return Dataset.from_indices(
        "mitbih",
        x,
        y,
        fit_idx,
        val_idx,
        test_idx,
        class_names=list(CLASS_NAMES),
        label_value=1.0,
        source=f"{source}: WFDB records in {root.name}/; {ATTRIBUTION}",
        extra={
            "records": records,
            "channel": options.channel,
            "split": options.split,
            **split_facts,
            "balance": options.balance,
            "class_counts": {
                "all": class_counts(y, CLASS_NAMES),
                "train": class_counts(y[fit_idx], CLASS_NAMES),
                "val": class_counts(y[val_idx], CLASS_NAMES),
                "test": class_counts(y[test_idx], CLASS_NAMES),
            },
            "beats_dropped_at_edges": int(beats["dropped_edges"].sum()),
            "annotations_skipped": int(beats["skipped_annotations"].sum()),
            "cache_hit": cache_hit,
            "load_seconds": round(load_s, 3),
        },
    )


def select_records(root: Path, options: Options) -> list[str]:
    """The record names to load, in a stable order, after the paced/split filters."""
    if not root.is_dir():
        raise DataError(
            f"MIT-BIH directory {root} does not exist; set data.path to the folder holding NNN.hea/.dat/.atr"
        )
    if options.records:
        names = list(dict.fromkeys(options.records))
    elif (root / "RECORDS").exists():
        names = [line.strip() for line in (root / "RECORDS").read_text().splitlines() if line.strip()]
    else:
        names = sorted(p.stem for p in root.glob("*.hea"))
    if options.exclude_paced:
        names = [n for n in names if n not in PACED]
    if options.split == "inter-patient":
        names = [n for n in names if n in DS1 or n in DS2]
        for group, members in (("DS1", DS1), ("DS2", DS2)):
            if not set(names) & set(members):
                raise DataError(
                    f"split inter-patient: no {group} record among the selected records; "
                    f"include some of {', '.join(members)} in data.options.records (or leave it empty)"
                )
    if not names:
        raise DataError(
            f"no MIT-BIH records selected in {root}; check data.options.records and that the folder holds NNN.hea files"
        )
    return names


def load_beats(root: Path, records: list[str], options: Options) -> tuple[dict[str, np.ndarray], bool]:
    """Beats of all ``records`` as arrays ``x``, ``y``, ``record`` (+ per-record counters),
    from the cache when its key (options and file stamps) matches."""
    stamps = [_file_stamps(root, r) for r in records]
    preprocessing = {
        k: v
        for k, v in vars(options).items()
        if k not in ("split", "test_fraction", "balance", "balance_per_class", "cache_dir", "use_cache")
    }
    key = cache_key("mitbih-v1", str(root.resolve()), records, stamps, preprocessing)
    path = cache_root(options.cache_dir) / f"mitbih-{key}.npz"

    def build() -> dict[str, np.ndarray]:
        parts = [read_record_beats(root / r, options) for r in records]
        return {
            "x": np.concatenate([p[0] for p in parts]),
            "y": np.concatenate([p[1] for p in parts]),
            "record": np.concatenate([np.full(len(p[1]), r) for p, r in zip(parts, records)]),
            "dropped_edges": np.array([p[2] for p in parts]),
            "skipped_annotations": np.array([p[3] for p in parts]),
        }

    return cached_arrays(path, build, enabled=options.use_cache)


def read_record_beats(record_path: Path, options: Options) -> tuple[np.ndarray, np.ndarray, int, int]:
    """(beats float32 (n, beat_length), labels int64, beats dropped at edges, annotations skipped)."""
    wfdb = _require("wfdb")
    name = record_path.name
    header = _read_header(record_path)
    if round(header.fs) != options.fs_expected:
        raise DataError(
            f"MIT-BIH record {name}: header says {header.fs:g} Hz, expected {options.fs_expected} Hz; "
            f"set data.options.fs_expected: {round(header.fs)} if this rate is intended"
        )
    if options.channel not in header.sig_name:
        raise DataError(
            f"MIT-BIH record {name}: channel {options.channel!r} not found (has {', '.join(header.sig_name)}); "
            "drop the record from data.options.records or set data.options.channel"
        )
    channel = header.sig_name.index(options.channel)
    try:
        signal = wfdb.rdrecord(str(record_path), channels=[channel]).p_signal[:, 0]
    except (OSError, ValueError) as exc:
        raise DataError(f"MIT-BIH record {name}: cannot read the signal file ({exc}); re-copy {name}.dat") from exc
    samples, symbols = _read_annotations(record_path)

    fs = options.fs_expected
    if options.resample_hz and options.resample_hz != fs:
        g = gcd(options.resample_hz, fs)
        signal = resample_poly(signal, options.resample_hz // g, fs // g)
        samples = np.rint(samples * (options.resample_hz / fs)).astype(np.int64)

    is_beat = np.array([s in AAMI for s in symbols], dtype=bool)
    r_peaks = samples[is_beat]
    labels = np.array([AAMI[s] for s in np.asarray(symbols)[is_beat]], dtype=np.int64)
    starts = r_peaks - options.pre_r
    inside = (starts >= 0) & (starts + options.beat_length <= len(signal))
    windows = starts[inside][:, None] + np.arange(options.beat_length)[None, :]
    beats = signal[windows]
    if options.normalize == "minmax":
        low = beats.min(axis=1, keepdims=True)
        span = beats.max(axis=1, keepdims=True) - low
        beats = np.divide(beats - low, span, out=np.zeros_like(beats), where=span > 0)
    return (beats.astype(np.float32), labels[inside], int((~inside).sum()), int((~is_beat).sum()))


def _read_header(record_path: Path) -> wfdb.Record:
    name = record_path.name
    for ext in ("hea", "dat", "atr"):
        if not record_path.with_suffix(f".{ext}").exists():
            raise DataError(
                f"MIT-BIH record {name}: file {name}.{ext} missing in {record_path.parent}; "
                f"copy all of {name}.hea/.dat/.atr there or drop {name} from data.options.records"
            )
    wfdb = _require("wfdb")
    try:
        return wfdb.rdheader(str(record_path))
    except Exception as exc:  # wfdb raises bare Exceptions/ValueErrors for malformed headers
        raise DataError(f"MIT-BIH record {name}: unreadable header {name}.hea ({exc}); re-copy the file") from exc


def _read_annotations(record_path: Path) -> tuple[np.ndarray, list[str]]:
    wfdb = _require("wfdb")
    name = record_path.name
    try:
        ann = wfdb.rdann(str(record_path), "atr")
    except Exception as exc:  # malformed annotation files raise assorted errors inside wfdb
        raise DataError(f"MIT-BIH record {name}: unreadable annotations {name}.atr ({exc}); re-copy the file") from exc
    if len(ann.sample) == 0:
        raise DataError(
            f"MIT-BIH record {name}: {name}.atr holds no annotations; drop {name} from data.options.records"
        )
    return np.asarray(ann.sample, dtype=np.int64), list(ann.symbol)


def _file_stamps(root: Path, record: str) -> list[tuple[str, int, int]]:
    files = [root / f"{record}.{ext}" for ext in ("hea", "dat", "atr")]
    return [(f.name, f.stat().st_size, f.stat().st_mtime_ns) if f.exists() else (f.name, -1, -1) for f in files]


def _resolve_source(source: str, path: Path | None, options: Options) -> Path:
    if source == "local":
        if path is None:
            raise DataError("data.path is required with data.source: local (the folder holding NNN.hea/.dat/.atr)")
        return Path(path)
    if source == "download":
        root = Path(path) if path else cache_root(options.cache_dir) / "mitdb"
        if not any(root.glob("*.hea")):
            wfdb = _require("wfdb")
            require_online("physionet.org", "MIT-BIH (PhysioNet mitdb)")
            try:
                wfdb.dl_database("mitdb", str(root))
            except Exception as exc:  # network errors come in many types
                raise DataError(
                    f"MIT-BIH download into {root} failed ({exc}); retry, or use data.source: local"
                ) from exc
        return root
    raise DataError(f"data.source: unknown source {source!r} for mitbih; use local or download")
