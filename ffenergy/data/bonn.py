"""Bonn University epilepsy EEG (Andrzejak et al. 2001): five sets of single-channel segments.

Layout: ``<path>/<set folder>/<prefix>NNN.txt``, one integer sample per line, 100 segments of
4,097 samples at 173.61 Hz per set. The folder of a set is the first of ``A_Z``, ``Z``, ``A``
(set A; likewise B_O/O/B, C_N/N/C, D_F/F/D, E_S/S/E) that exists; file names are matched
case-insensitively (set C ships as ``N001.TXT``).

Pipeline:
1. read every segment of the selected sets, checking its sample count and that each line is a
   number (errors name the file and line);
2. cut each segment into windows of ``window`` samples every ``step`` samples from its start
   (default 178-sample non-overlapping windows: 23 per segment, the UCI "Epileptic Seizure
   Recognition" layout); the tail that does not fill a window is dropped;
3. turn each window into ``features``: its ``log-spectrum`` (default: log(1 + |rFFT|) of the
   mean-removed window, DC bin dropped) or its ``waveform``;
4. split by **segment**, stratified by set: every window of a segment lands in exactly one of
   train, validation and test, so no split sees a neighbour of a test window;
5. ``normalize``: ``feature`` (default) z-scores every feature with the training split's mean
   and standard deviation, ``window`` z-scores each window on its own, ``none`` keeps the values.

Tasks: ``seizure`` (set E against the other selected sets) and ``five-class`` (one class per set).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ffenergy.data.base import DataError, Dataset, require_option
from ffenergy.data.splits import check_fraction, class_counts, grouped_split, zscore

log = logging.getLogger(__name__)

SETS = {
    "A": ("Z", "healthy, eyes open (surface)"),
    "B": ("O", "healthy, eyes closed (surface)"),
    "C": ("N", "interictal, opposite hippocampal formation (intracranial)"),
    "D": ("F", "interictal, epileptogenic zone (intracranial)"),
    "E": ("S", "ictal: seizure (intracranial)"),
}
SEIZURE_SET = "E"
TASKS = ("seizure", "five-class")
FEATURES = ("log-spectrum", "waveform")
NORMALIZATIONS = ("feature", "window", "none")
FS_HZ = 173.61
ATTRIBUTION = (
    "Bonn University epilepsy EEG, sets A-E; Andrzejak, Lehnertz, Mormann, Rieke, David, Elger, "
    "Phys. Rev. E 64, 061907, 2001"
)


@dataclass(frozen=True)
class Options:
    """Bonn EEG loader options (YAML ``data.options``)."""

    sets: list[str] = field(default_factory=lambda: list(SETS))
    """Sets to load, from A, B, C, D, E; ``seizure`` needs E and at least one other."""
    task: str = "seizure"
    """``seizure``: E (class ``seizure``) against the other sets (``non-seizure``);
    ``five-class``: one class per selected set, named by its letter."""
    window: int = 178
    """Samples per window (178 = 1.025 s at 173.61 Hz, the UCI layout; 174 is about 1 s)."""
    step: int = 0
    """Samples between window starts; 0 = ``window`` (non-overlapping). Overlapping windows stay
    inside their segment's split."""
    samples_per_segment: int = 4097
    """Samples every segment file must hold (Bonn: 4,097 = 23.6 s)."""
    features: str = "log-spectrum"
    """``log-spectrum``: log(1 + |rFFT|) of the mean-removed window without the DC bin
    (window // 2 values at 173.61 / window Hz spacing; keeps the amplitude as a log offset);
    ``waveform``: the window's samples."""
    normalize: str = "feature"
    """``feature``: z-score every feature with the training windows' mean and standard
    deviation; ``window``: each window minus its mean, over its standard deviation (drops the
    amplitude); ``none``: the values as they are (raw 12-bit samples for ``waveform``)."""
    test_fraction: float = 0.2
    """Share of each set's segments (not windows) held out for test."""

    def validate(self) -> None:
        require_option("task", self.task, TASKS)
        require_option("features", self.features, FEATURES)
        require_option("normalize", self.normalize, NORMALIZATIONS)
        unknown = [s for s in self.sets if s not in SETS]
        if unknown or not self.sets:
            raise ValueError(f"data.options.sets: {self.sets} must be a non-empty list of {', '.join(SETS)}")
        if len(set(self.sets)) != len(self.sets):
            raise ValueError(f"data.options.sets: {self.sets} repeats a set; list each once")
        if self.task == "seizure" and (SEIZURE_SET not in self.sets or len(self.sets) < 2):
            raise ValueError(
                f"data.options.sets: {self.sets} with task seizure needs E (the seizure set) and at least "
                "one of A-D, e.g. [A, B, C, D, E]"
            )
        if self.task == "five-class" and len(self.sets) < 2:
            raise ValueError(f"data.options.sets: {self.sets} gives one class; list at least two sets")
        if self.samples_per_segment < 1:
            raise ValueError(f"data.options.samples_per_segment: {self.samples_per_segment} must be >= 1 (Bonn: 4097)")
        if not 1 <= self.window <= self.samples_per_segment:
            raise ValueError(
                f"data.options.window: {self.window} must be in [1, samples_per_segment="
                f"{self.samples_per_segment}]; use e.g. 178"
            )
        if self.step < 0:
            raise ValueError(f"data.options.step: {self.step} is negative; use 0 (= window) or a positive stride")
        try:
            check_fraction("data.options.test_fraction", self.test_fraction, allow_zero=False)
        except ValueError as exc:
            raise ValueError(f"{exc} (share of segments held out for test)") from None

    @property
    def stride(self) -> int:
        return self.step or self.window

    def class_names(self) -> list[str]:
        return ["non-seizure", "seizure"] if self.task == "seizure" else list(self.sets)

    def class_of(self, set_name: str) -> int:
        if self.task == "seizure":
            return int(set_name == SEIZURE_SET)
        return self.sets.index(set_name)


def load(source: str, path: Path | None, val_fraction: float, seed: int, options: Options) -> Dataset:
    """Load windowed Bonn segments from a local copy (``source: local``; there is no download).

    ``val_fraction`` is the share of each set's non-test segments held out for threshold
    calibration. ``label_value`` is the largest training value, as for CHB-MIT, so the FF label
    overlay is as strong as the strongest input.
    """
    options.validate()
    check_fraction("val_fraction", val_fraction)
    if source != "local":
        raise DataError(
            f"data.source: {source!r} is not available for bonn (no stable download URL); copy the "
            "A_Z ... E_S folders and use data.source: local with data.path"
        )
    if path is None:
        raise DataError("data.path is required with data.source: local (the folder holding A_Z/, ..., E_S/)")
    root = Path(path)
    if not root.is_dir():
        raise DataError(f"Bonn EEG directory {root} does not exist; set data.path to the folder holding A_Z/ ... E_S/")

    segments, seg_set, seg_names = [], [], []
    for set_name in options.sets:
        for file in segment_files(root, set_name):
            segments.append(read_segment(file, options.samples_per_segment))
            seg_set.append(set_name)
            seg_names.append(f"{file.parent.name}/{file.name}")
    windows = cut_windows(np.stack(segments), options.window, options.stride)  # (segments, per, window)
    n_seg, per_seg, _ = windows.shape
    x = windows.reshape(n_seg * per_seg, options.window)
    if options.features == "log-spectrum":
        x = log_spectrum(x)
    if options.normalize == "window":
        x = zscore(x)
    segment = np.repeat(np.arange(n_seg), per_seg)
    set_index = np.repeat([list(SETS).index(s) for s in seg_set], per_seg)
    y = np.repeat([options.class_of(s) for s in seg_set], per_seg).astype(np.int64)

    rest, test_idx = grouped_split(segment, set_index, options.test_fraction, seed)
    fit_rel, val_rel = grouped_split(segment[rest], set_index[rest], val_fraction, seed + 1)
    fit_idx, val_idx = rest[fit_rel], rest[val_rel]
    # test windows in seeded random order: any prefix (an MCU run measures the first max_samples)
    # then mixes every set instead of holding set A's segments only
    test_idx = test_idx[np.random.default_rng([seed, 2]).permutation(len(test_idx))]
    if options.normalize == "feature":
        mean, std = x[fit_idx].mean(axis=0), x[fit_idx].std(axis=0)
        flat = std <= 1e-9 * (np.abs(mean) + 1)  # constant over training (rounding noise): centre only
        x = (x - mean) / np.where(flat, 1.0, std)
    x = x.astype(np.float32)
    names = options.class_names()
    log.info(
        "Bonn EEG: %d segments of sets %s, %d windows of %d samples each (%d per segment)",
        n_seg,
        "".join(options.sets),
        len(y),
        options.window,
        per_seg,
    )
    return Dataset.from_indices(
        "bonn",
        x,
        y,
        fit_idx,
        val_idx,
        test_idx,
        class_names=names,
        label_value=float(x[fit_idx].max()) if len(fit_idx) else 1.0,
        source=f"{source}: Bonn EEG text segments in {root.name}/; {ATTRIBUTION}",
        extra={
            "sets": list(options.sets),
            "task": options.task,
            "window": options.window,
            "step": options.stride,
            "windows_per_segment": per_seg,
            "features": options.features,
            "n_features": int(x.shape[1]),
            "normalize": options.normalize,
            "split": "by segment, stratified by set",
            "test_fraction": options.test_fraction,
            "segments": {
                part: sorted({seg_names[s] for s in segment[idx]})
                for part, idx in (("val", val_idx), ("test", test_idx))
            },
            "class_counts": {
                "all": class_counts(y, names),
                "train": class_counts(y[fit_idx], names),
                "val": class_counts(y[val_idx], names),
                "test": class_counts(y[test_idx], names),
            },
        },
    )


def set_folder(root: Path, set_name: str) -> Path:
    """The folder of one set: ``A_Z``, ``Z`` or ``A`` (and likewise for B-E), the first that exists."""
    prefix = SETS[set_name][0]
    candidates = [f"{set_name}_{prefix}", prefix, set_name]
    for name in candidates:
        if (root / name).is_dir():
            return root / name
    raise DataError(
        f"Bonn EEG set {set_name} ({SETS[set_name][1]}): none of the folders {', '.join(candidates)} "
        f"exists in {root}; extract set {set_name} ({prefix}.zip) there or drop {set_name} from data.options.sets"
    )


def segment_files(root: Path, set_name: str) -> list[Path]:
    """The segment files ``<prefix>NNN.txt`` of one set, sorted by name (extension in any case)."""
    folder = set_folder(root, set_name)
    prefix = SETS[set_name][0]
    files = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix.lower() == ".txt" and p.stem.upper().startswith(prefix) and p.stem[1:].isdigit()
    )
    if not files:
        raise DataError(
            f"Bonn EEG set {set_name}: no {prefix}NNN.txt files in {folder}; extract set {set_name} there "
            f"or drop {set_name} from data.options.sets"
        )
    return files


def read_segment(path: Path, expected: int) -> np.ndarray:
    """One segment file as float64 samples; raises ``DataError`` naming the file and line."""
    try:
        lines = path.read_text(encoding="ascii", errors="replace").splitlines()
    except OSError as exc:
        raise DataError(f"Bonn EEG file {path}: unreadable ({exc}); re-extract it") from exc
    while lines and not lines[-1].strip():
        lines.pop()  # a trailing empty line is not a sample
    try:
        values = np.array(lines, dtype=np.float64)
    except ValueError:
        bad = next(i for i, line in enumerate(lines) if not _is_number(line))
        raise DataError(
            f"Bonn EEG file {path}: line {bad + 1} is {lines[bad].strip()!r}, not a number; "
            "each line must hold one sample; re-extract the file"
        ) from None
    if len(values) != expected:
        raise DataError(
            f"Bonn EEG file {path}: {len(values)} samples, expected {expected}; re-extract the file, or set "
            "data.options.samples_per_segment if your copy is cut differently"
        )
    return values


def cut_windows(segments: np.ndarray, window: int, step: int) -> np.ndarray:
    """(segments, n, window) windows of every row of ``segments`` (segments, samples), from the start, every ``step`` samples."""
    n = (segments.shape[1] - window) // step + 1
    starts = np.arange(n) * step
    return segments[:, starts[:, None] + np.arange(window)[None, :]]


def log_spectrum(windows: np.ndarray) -> np.ndarray:
    """log(1 + |rFFT|) of each mean-removed window, without the DC bin: (n, window // 2) values."""
    spectrum = np.abs(np.fft.rfft(windows - windows.mean(axis=1, keepdims=True), axis=1))
    return np.log1p(spectrum[:, 1 : windows.shape[1] // 2 + 1])


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
