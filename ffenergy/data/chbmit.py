"""CHB-MIT Scalp EEG: 4 s windows of two channels, seizure vs non-seizure, balanced.

Layout: ``<path>/chbNN/chbNN-summary.txt`` plus the EDF files it lists (PhysioNet chbmit 1.0.0).
Pipeline per patient (defaults follow the group's sister paper and LightFF's code, see
docs/datasets.md):
1. parse the summary: seizure start/end seconds per EDF file; where PhysioNet's
   ``<file>.edf.seizures`` annotations are present they must agree with it (to one sample);
2. cut every EDF into non-overlapping ``window_s`` windows from the file start; a window fully
   inside a seizure is class 1, one that touches no seizure is class 0, others are dropped;
3. keep every seizure window and as many seeded-random non-seizure windows (balanced);
4. per file and channel: zero-phase Butterworth band-pass (``sosfiltfilt``), then per window
   and channel: z-score, keep every ``decimate``-th sample; the channels are concatenated
   (default 2 x 512 = 1024 values, the paper's 32 x 32 input).
The balanced windows of each patient are cached as ``.npz`` keyed by options, seed and files.
"""

from __future__ import annotations

import importlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import numpy as np
from scipy.signal import butter, sosfiltfilt

from ffenergy.data.base import DataError, Dataset, require_option
from ffenergy.data.splits import (
    cache_key,
    cache_root,
    cached_arrays,
    check_fraction,
    class_counts,
    require_online,
    stratified_split,
    zscore,
)


def _require(module: str) -> ModuleType:
    """``module`` (pyedflib, or wfdb for the download), imported on first use: both come with the
    optional extra ``ffenergy[eeg]``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        msg = f"CHB-MIT needs the {module} package, which is not installed: pip install 'ffenergy[eeg]'"
        raise DataError(msg) from None


log = logging.getLogger(__name__)
CLASS_NAMES = ["non-seizure", "seizure"]
PAPER_PATIENTS = [p for p in range(1, 25) if p not in (6, 14, 16)]
MODES = ("pooled", "per-patient")
MISSING_CHANNEL = ("error", "skip-file")
ATTRIBUTION = (
    "CHB-MIT Scalp EEG Database (PhysioNet chbmit 1.0.0, ODC-By 1.0); Shoeb, PhD thesis, MIT, "
    "2009; Goldberger et al., Circulation 101(23):e215-e220, 2000"
)


@dataclass(frozen=True)
class Options:
    """CHB-MIT loader options (YAML ``data.options``)."""

    patients: list[int] = field(default_factory=lambda: list(PAPER_PATIENTS))
    """Patient numbers (chbNN folders); default the paper's 21 (all 24 but 6, 14, 16)."""
    mode: str = "pooled"
    """``pooled``: windows of all patients in one dataset; ``per-patient``: exactly one patient
    in ``patients`` (run one experiment per patient and average, as the paper's test code)."""
    channels: list[str] = field(default_factory=lambda: ["F7-T7", "F8-T8"])
    """Bipolar channels to read, concatenated in this order. A repeated name such as
    T8-P8-0 / T8-P8-1 matches its base name; the first occurrence is used."""
    missing_channel: str = "error"
    """A file without one of ``channels``: ``error`` (stop, naming file and channel) or
    ``skip-file`` (leave the file out and list it in the manifest; some CHB-MIT patients,
    e.g. chb12, change montage between files)."""
    fs_expected: int = 256
    """Sampling rate every selected channel must have, in Hz."""
    band_low_hz: float = 1.0
    """Band-pass lower edge, Hz."""
    band_high_hz: float = 30.0
    """Band-pass upper edge, Hz."""
    filter_order: int = 4
    """Butterworth order of the band-pass (applied forwards and backwards: zero phase)."""
    window_s: float = 4.0
    """Window length in seconds (4 s = 1024 samples at 256 Hz)."""
    zscore: bool = True
    """Z-score each channel of each window."""
    decimate: int = 2
    """Keep every n-th sample of each window (the paper's 2: 1024 values for two channels); 1 = all."""
    test_fraction: float = 0.15
    """Share of windows in the test split (stratified by patient and class; 70/15/15 with
    val_fraction 0.15/0.85)."""
    cache_dir: str = ""
    """Where the window cache lives; empty = $FFENERGY_CACHE or ~/.cache/ffenergy."""
    use_cache: bool = True
    """Read/write the window cache."""

    def validate(self) -> None:
        require_option("mode", self.mode, MODES)
        require_option("missing_channel", self.missing_channel, MISSING_CHANNEL)
        if not self.patients:
            raise ValueError("data.options.patients: empty; list patient numbers, e.g. [1, 2, 3]")
        if self.mode == "per-patient" and len(self.patients) != 1:
            raise ValueError(
                f"data.options.patients: per-patient mode needs exactly one patient, got {len(self.patients)}; "
                "run one experiment per patient or use mode: pooled"
            )
        bad = [p for p in self.patients if not 1 <= p <= 99]
        if bad:
            raise ValueError(f"data.options.patients: {bad} out of range; use numbers 1..99 (chb01 = 1)")
        if not self.channels:
            raise ValueError("data.options.channels: empty; name at least one channel, e.g. [F7-T7, F8-T8]")
        if not 0 < self.band_low_hz < self.band_high_hz < self.fs_expected / 2:
            raise ValueError(
                f"data.options.band_low_hz/band_high_hz: {self.band_low_hz}-{self.band_high_hz} Hz is not a band "
                f"inside (0, {self.fs_expected / 2:g}) Hz; use e.g. 1.0 and 30.0"
            )
        for name in ("fs_expected", "filter_order", "decimate"):
            if getattr(self, name) < 1:
                raise ValueError(f"data.options.{name}: {getattr(self, name)} must be >= 1; use a positive integer")
        n = self.window_s * self.fs_expected
        if n < 1 or abs(n - round(n)) > 1e-9:
            raise ValueError(
                f"data.options.window_s: {self.window_s} s is not a whole number of samples at "
                f"{self.fs_expected} Hz; use e.g. 4.0"
            )
        try:
            check_fraction("data.options.test_fraction", self.test_fraction, allow_zero=False)
        except ValueError as exc:
            raise ValueError(f"{exc} (share of windows held out for test)") from None

    @property
    def window_samples(self) -> int:
        return round(self.window_s * self.fs_expected)


@dataclass
class EdfEntry:
    """One EDF file of a summary: its name and seizure intervals in seconds."""

    name: str
    seizures: list[tuple[float, float]]


def load(source: str, path: Path | None, val_fraction: float, seed: int, options: Options) -> Dataset:
    """Load balanced CHB-MIT windows from a local copy (``local``) or PhysioNet (``download``).

    ``val_fraction`` is the share of the non-test windows held out (stratified by patient and
    class) for threshold calibration. ``label_value`` is the maximum training value, as the
    paper's main code (its test code used the constant 41.85, the maximum of its data).
    """
    options.validate()
    check_fraction("val_fraction", val_fraction)
    root = _resolve_source(source, path, options)
    parts = [patient_windows(root, p, seed, options) for p in options.patients]
    x = np.concatenate([a["x"] for a, _ in parts])
    y = np.concatenate([a["y"] for a, _ in parts])
    patient = np.concatenate([np.full(len(a["y"]), p) for (a, _), p in zip(parts, options.patients)])
    if len(y) == 0:
        raise DataError(
            f"CHB-MIT patients {options.patients}: no seizure window fully inside a seizure (or every file "
            "skipped); check the summary files or choose other data.options.patients"
        )
    strata = patient * 2 + y
    rest, test_idx = stratified_split(strata, options.test_fraction, seed)
    fit_rel, val_rel = stratified_split(strata[rest], val_fraction, seed + 1)
    fit_idx, val_idx = rest[fit_rel], rest[val_rel]
    return Dataset.from_indices(
        "chbmit",
        x,
        y,
        fit_idx,
        val_idx,
        test_idx,
        class_names=list(CLASS_NAMES),
        label_value=float(x[fit_idx].max()) if len(fit_idx) else 1.0,
        source=f"{source}: CHB-MIT EDF files in {root.name}/; {ATTRIBUTION}",
        extra={
            "patients": list(options.patients),
            "mode": options.mode,
            "channels": list(options.channels),
            "split": "stratified by patient and class",
            "test_fraction": options.test_fraction,
            "windows_per_patient": {f"chb{p:02d}": len(a["y"]) for (a, _), p in zip(parts, options.patients)},
            "class_counts": {
                "all": class_counts(y, CLASS_NAMES),
                "train": class_counts(y[fit_idx], CLASS_NAMES),
                "val": class_counts(y[val_idx], CLASS_NAMES),
                "test": class_counts(y[test_idx], CLASS_NAMES),
            },
            "files_skipped_missing_channel": sorted(f for a, _ in parts for f in a["skipped_files"].tolist()),
            "cache_hits": sum(hit for _, hit in parts),
        },
    )


def parse_summary(path: Path) -> list[EdfEntry]:
    """The EDF files of a ``chbNN-summary.txt`` with their seizure intervals (seconds)."""
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:
        raise DataError(
            f"CHB-MIT summary {path} unreadable ({exc}); copy chbNN-summary.txt into the patient folder"
        ) from exc
    entries = []
    for block in re.split(r"(?=^File Name:)", text, flags=re.M)[1:]:
        header = re.match(r"File Name:\s*(\S+)", block)
        assert header is not None  # every block starts at a "File Name:" line (the split's lookahead)
        name = header.group(1)
        starts = [float(v) for v in re.findall(r"Seizure(?:\s+\d+)?\s+Start Time:\s*([\d.]+)", block)]
        ends = [float(v) for v in re.findall(r"Seizure(?:\s+\d+)?\s+End Time:\s*([\d.]+)", block)]
        count = re.search(r"Number of Seizures in File:\s*(\d+)", block)
        expected = int(count.group(1)) if count else len(starts)
        if not (len(starts) == len(ends) == expected) or any(e <= s for s, e in zip(starts, ends)):
            raise DataError(
                f"CHB-MIT summary {path.name}: entry {name} lists {expected} seizures but "
                f"{len(starts)} start / {len(ends)} end times (or an end before its start); fix the summary file"
            )
        entries.append(EdfEntry(name, list(zip(starts, ends))))
    if not entries:
        raise DataError(f"CHB-MIT summary {path} lists no 'File Name:' entries; is it a chbNN-summary.txt?")
    return entries


def read_seizure_annotations(path: Path) -> list[tuple[float, float]]:
    """Seizure intervals (seconds) of a ``chbNN_MM.edf.seizures`` file: WFDB annotations, one
    ``[`` onset and one ``]`` offset per seizure, in samples at the file's own rate."""
    wfdb = _require("wfdb")
    try:
        ann = wfdb.rdann(str(path.with_suffix("")), path.suffix.lstrip("."))
    except Exception as exc:  # malformed annotation files raise assorted errors inside wfdb
        raise DataError(f"CHB-MIT annotations {path.name}: unreadable ({exc}); re-copy it from PhysioNet") from exc
    symbols, samples = list(ann.symbol), np.asarray(ann.sample, dtype=np.int64)
    if not ann.fs or symbols != ["[", "]"] * (len(symbols) // 2):
        raise DataError(
            f"CHB-MIT annotations {path.name}: expected '[' onset / ']' offset pairs with a sampling rate, got "
            f"symbols {''.join(symbols)!r} at fs {ann.fs}; re-copy it from PhysioNet"
        )
    return [(samples[i] / ann.fs, samples[i + 1] / ann.fs) for i in range(0, len(samples), 2)]


def check_annotations(folder: Path, entries: list[EdfEntry], tolerance_s: float = 1 / 256) -> int:
    """Compare every ``<file>.seizures`` annotation file in ``folder`` with the summary's seizures
    of that file; returns how many files were checked. A disagreement is a ``DataError``."""
    checked = 0
    for entry in entries:
        path = folder / f"{entry.name}.seizures"
        if not path.exists():
            continue
        annotated = read_seizure_annotations(path)
        agree = len(annotated) == len(entry.seizures) and all(
            abs(a - b) <= tolerance_s for pair in zip(annotated, entry.seizures) for a, b in zip(*pair)
        )
        if not agree:
            raise DataError(
                f"CHB-MIT {folder.name}: {path.name} marks seizures {_seconds(annotated)} but the summary lists "
                f"{_seconds(entry.seizures)} for {entry.name}; re-copy both files from PhysioNet"
            )
        checked += 1
    return checked


def _seconds(intervals: list[tuple[float, float]]) -> str:
    return "[" + ", ".join(f"{s:g}-{e:g} s" for s, e in intervals) + "]" if intervals else "none"


def window_labels(n_samples: int, fs: int, window: int, seizures: list[tuple[float, float]]) -> np.ndarray:
    """Label of each non-overlapping window from the file start: 1 fully inside a seizure,
    0 touching no seizure, -1 partly inside (dropped)."""
    n = n_samples // window
    start_s = np.arange(n) * window / fs
    end_s = start_s + window / fs
    labels = np.zeros(n, dtype=np.int64)
    for s, e in seizures:
        inside = (start_s >= s) & (end_s <= e)
        overlap = (start_s < e) & (end_s > s)
        labels[overlap & ~inside & (labels != 1)] = -1
        labels[inside] = 1
    return labels


def patient_windows(root: Path, patient: int, seed: int, options: Options) -> tuple[dict[str, np.ndarray], bool]:
    """Balanced windows ``x`` (n, features) float32 and ``y`` of one patient, and a cache-hit flag."""
    folder = root / f"chb{patient:02d}"
    summary = folder / f"chb{patient:02d}-summary.txt"
    if not summary.exists():
        raise DataError(
            f"CHB-MIT patient {patient}: {summary} missing; copy the chb{patient:02d} folder from PhysioNet "
            "chbmit or remove the patient from data.options.patients"
        )
    entries = parse_summary(summary)
    for entry in entries:
        if not (folder / entry.name).exists():
            raise DataError(
                f"CHB-MIT patient {patient}: {entry.name} (listed in {summary.name}) missing in {folder}; "
                "copy it or remove the patient from data.options.patients"
            )
    checked = check_annotations(folder, entries, tolerance_s=1 / options.fs_expected)
    if checked:
        log.info("CHB-MIT chb%02d: %d .seizures annotation files agree with %s", patient, checked, summary.name)
    stamps = [(e.name, (folder / e.name).stat().st_size, (folder / e.name).stat().st_mtime_ns) for e in entries]
    prep = {
        k: v
        for k, v in vars(options).items()
        if k not in ("patients", "mode", "test_fraction", "cache_dir", "use_cache")
    }
    key = cache_key("chbmit-v1", str(folder.resolve()), summary.read_text(errors="replace"), stamps, prep, seed)
    path = cache_root(options.cache_dir) / f"chbmit-chb{patient:02d}-{key}.npz"
    return cached_arrays(
        path, lambda: _build_patient(folder, patient, entries, seed, options), enabled=options.use_cache
    )


def _build_patient(
    folder: Path, patient: int, entries: list[EdfEntry], seed: int, options: Options
) -> dict[str, np.ndarray]:
    window = options.window_samples
    labels, skipped = [], []
    for entry in entries:
        try:
            with _Edf(folder / entry.name, options) as edf:
                labels.append(window_labels(edf.n_samples, options.fs_expected, window, entry.seizures))
        except MissingChannelError:
            if options.missing_channel == "error":
                raise
            labels.append(np.zeros(0, dtype=np.int64))
            skipped.append(entry.name)
    file_of = np.concatenate([np.full(len(l), i) for i, l in enumerate(labels)])
    index_in_file = np.concatenate([np.arange(len(l)) for l in labels])
    flat = np.concatenate(labels)
    seizure, normal = np.flatnonzero(flat == 1), np.flatnonzero(flat == 0)
    rng = np.random.default_rng([seed, patient])
    k = min(len(seizure), len(normal))
    chosen = np.sort(np.concatenate([rng.permutation(seizure)[:k], rng.permutation(normal)[:k]]))

    sos = butter(
        options.filter_order,
        [options.band_low_hz, options.band_high_hz],
        btype="bandpass",
        fs=options.fs_expected,
        output="sos",
    )
    xs = []
    for i in np.unique(file_of[chosen]):
        with _Edf(folder / entries[i].name, options) as edf:
            signals = np.stack([sosfiltfilt(sos, edf.read(c)) for c in range(len(options.channels))])
        starts = index_in_file[chosen[file_of[chosen] == i]] * window
        windows = np.stack([signals[:, s : s + window] for s in starts])  # (n, channels, window)
        if options.zscore:
            windows = zscore(windows, axis=2)
        xs.append(windows[:, :, :: options.decimate].reshape(len(starts), -1))
    features = len(options.channels) * len(range(0, window, options.decimate))
    x = np.concatenate(xs).astype(np.float32) if xs else np.zeros((0, features), np.float32)
    return {"x": x, "y": flat[chosen], "skipped_files": np.array(skipped, dtype=str)}


class MissingChannelError(DataError):
    """An EDF file lacks one of the requested channels."""


class _Edf:
    """An open EDF file with the selected channels located and their rate checked."""

    def __init__(self, path: Path, options: Options):
        pyedflib = _require("pyedflib")
        self.path = path
        try:
            self._reader = pyedflib.EdfReader(str(path))
        except OSError as exc:
            raise DataError(f"CHB-MIT file {path.name}: not a readable EDF ({exc}); re-copy it from PhysioNet") from exc
        labels = [label.strip() for label in self._reader.getSignalLabels()]
        self._index = []
        for channel in options.channels:
            idx = _find_channel(labels, channel)
            if idx is None:
                self._reader.close()
                raise MissingChannelError(
                    f"CHB-MIT file {path.name}: channel {channel} missing (has {', '.join(labels)}); "
                    "set data.options.missing_channel: skip-file, remove the patient from "
                    "data.options.patients, or change data.options.channels"
                )
            fs = self._reader.getSampleFrequency(idx)
            if round(fs) != options.fs_expected:
                self._reader.close()
                raise DataError(
                    f"CHB-MIT file {path.name}: channel {channel} sampled at {fs:g} Hz, expected "
                    f"{options.fs_expected} Hz; set data.options.fs_expected if this rate is intended"
                )
            self._index.append(idx)
        self.n_samples = int(min(self._reader.getNSamples()[i] for i in self._index))

    def read(self, k: int) -> np.ndarray:
        """The physical signal of the k-th selected channel, trimmed to the common length."""
        return self._reader.readSignal(self._index[k])[: self.n_samples]

    def __enter__(self) -> _Edf:
        return self

    def __exit__(self, *exc: object) -> None:
        self._reader.close()


def _find_channel(labels: list[str], channel: str) -> int | None:
    """Index of ``channel`` in ``labels``: exact (case-insensitive) match first, else a repeated
    name with a ``-N`` suffix (CHB-MIT writes T8-P8 twice as T8-P8-0 and T8-P8-1)."""
    wanted = channel.upper()
    upper = [label.upper() for label in labels]
    if wanted in upper:
        return upper.index(wanted)
    for i, label in enumerate(upper):
        if re.fullmatch(re.escape(wanted) + r"-\d+", label):
            return i
    return None


def _resolve_source(source: str, path: Path | None, options: Options) -> Path:
    if source == "local":
        if path is None:
            raise DataError("data.path is required with data.source: local (the folder holding chbNN/ patient folders)")
        if not Path(path).is_dir():
            raise DataError(f"CHB-MIT directory {path} does not exist; set data.path to the folder holding chbNN/")
        return Path(path)
    if source == "download":
        root = Path(path) if path else cache_root(options.cache_dir) / "chbmit"
        _download(root, options.patients)
        return root
    raise DataError(f"data.source: unknown source {source!r} for chbmit; use local or download")


def _download(root: Path, patients: list[int]) -> None:
    """Fetch the summaries and EDF files of ``patients`` from PhysioNet (about 1 GB per patient)."""
    missing = [p for p in patients if not _complete(root / f"chb{p:02d}")]
    if not missing:
        return
    wfdb = _require("wfdb")
    require_online("physionet.org", "CHB-MIT (PhysioNet chbmit)")
    try:
        for p in missing:
            folder = f"chb{p:02d}"
            wfdb.dl_files("chbmit", str(root), [f"{folder}/{folder}-summary.txt"])
            names = [e.name for e in parse_summary(root / folder / f"{folder}-summary.txt")]
            wfdb.dl_files("chbmit", str(root), [f"{folder}/{n}" for n in names])
    except DataError:
        raise
    except Exception as exc:  # network errors come in many types
        raise DataError(f"CHB-MIT download into {root} failed ({exc}); retry, or use data.source: local") from exc


def _complete(folder: Path) -> bool:
    """True when the patient folder holds its summary and every EDF file it lists."""
    summary = folder / f"{folder.name}-summary.txt"
    return summary.exists() and all((folder / e.name).exists() for e in parse_summary(summary))
