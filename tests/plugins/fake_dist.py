"""Installed distributions written under a temp dir: a ``<name>-<version>.dist-info`` with an
``entry_points.txt`` and the modules it names, found by importlib.metadata once the folder is on
``sys.path`` (or ``PYTHONPATH`` for a subprocess), exactly as a pip-installed plug-in is."""

from __future__ import annotations

from pathlib import Path


def write_dist(
    site: Path, name: str, version: str, entry_points: dict[str, dict[str, str]], modules: dict[str, str]
) -> None:
    """A distribution ``name`` declaring ``entry_points`` (group -> entry name -> value) and holding ``modules``."""
    info = site / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(
        "".join(
            f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in entries.items())
            for group, entries in entry_points.items()
        )
    )
    for module, text in modules.items():
        (site / f"{module}.py").write_text(text)
