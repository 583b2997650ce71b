"""How energies read: one SI unit choice and one formatter for tables, reports and figures."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

_UNITS = ((1.0, "J"), (1e-3, "mJ"), (1e-6, "µJ"), (1e-9, "nJ"))


def energy_unit(values: Iterable[float] | np.ndarray) -> tuple[float, str]:
    """(scale, unit) such that ``values / scale`` reads in a convenient SI unit."""
    finite = np.abs(np.asarray(list(values) if not isinstance(values, np.ndarray) else values, dtype=float))
    finite = finite[np.isfinite(finite) & (finite > 0)]
    if finite.size == 0:
        return 1.0, "J"
    typical = float(np.median(finite))
    return next(((s, u) for s, u in _UNITS if typical >= s), _UNITS[-1])


def format_energy(
    joules: float | None, ci95: float | None = None, unit: tuple[float, str] | None = None, missing: str = "—"
) -> str:
    """'1.23 mJ' or '1.23 ± 0.04 mJ' (``unit``: a fixed (scale, name), else chosen from ``joules``);
    ``missing`` when there is no measurement."""
    if joules is None or not np.isfinite(joules):
        return missing
    scale, name = unit or energy_unit([joules])
    if ci95 is None or not np.isfinite(ci95):
        return f"{joules / scale:.3g} {name}"
    return f"{joules / scale:.3g} ± {float(f'{ci95 / scale:.2g}'):g} {name}"  # 2 significant digits, no exponent
