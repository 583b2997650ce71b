"""The evaluate stage: every (host target, procedure, mode) over the whole test split into samples.csv."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from ffenergy.contract import SAMPLES_COLUMNS, CsvAppender, read_rows, rewrite_csv
from ffenergy.data.base import Dataset
from ffenergy.experiment.manifest import Manifest
from ffenergy.experiment.procedure import Procedure, to_cpu
from ffenergy.targets.host import HostTarget
from ffenergy.vocabulary import all_modes, forced_depth


def evaluate(
    path: Path,
    data: Dataset,
    procedures: list[Procedure],
    targets: list[HostTarget],
    batch_size: int,
    manifest: Manifest,
) -> None:
    """Append the groups not yet on disk (a resumed run) to samples.csv; describe each target in the manifest."""
    done = complete_groups(path, len(data.y_test), {t.name for t in targets})
    with CsvAppender(path, SAMPLES_COLUMNS) as out:
        for target in targets:
            manifest.data["targets"][target.name] = target.describe()
            for proc in procedures:
                learner = target.deploy(proc.learner)
                for mode in all_modes(learner.n_layers):
                    if (target.name, proc.name, mode) in done:
                        continue
                    p = target.predict(
                        learner, data.x_test, proc.thresholds, forced_depth(mode, learner.n_layers), batch_size
                    )
                    out.write_many(
                        {
                            "target": target.name,
                            "procedure": proc.name,
                            "mode": mode,
                            "sample": i,
                            "label": int(y),
                            "pred": int(p.pred[i]),
                            "exit_layer": int(p.exit_layer[i]),
                            "macs": int(p.macs[i]),
                            "correct": int(p.pred[i] == y),
                        }
                        for i, y in enumerate(data.y_test)
                    )
    to_cpu(procedures)
    manifest.save()


def complete_groups(path: Path, n: int, targets: set[str]) -> set[tuple[str, str, str]]:
    """(target, procedure, mode) groups of ``targets`` with all n samples on disk. Partial groups
    of those targets (a crash mid-write) are dropped; rows of other targets are kept as they are."""
    rows = read_rows(path)
    counts: dict[tuple[str, str, str], int] = defaultdict(int)
    for r in rows:
        if r["target"] in targets:
            counts[(r["target"], r["procedure"], r["mode"])] += 1
    complete = {k for k, c in counts.items() if c == n}
    if len(complete) != len(counts):
        rewrite_csv(
            path,
            SAMPLES_COLUMNS,
            [r for r in rows if r["target"] not in targets or (r["target"], r["procedure"], r["mode"]) in complete],
        )
    return complete
