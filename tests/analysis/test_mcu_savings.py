"""What early exit saves on an MCU, from samples.csv rows."""

from __future__ import annotations

import pytest

from ffenergy.analysis.mcu_savings import exit_check_cost, mode_figures

LAYER_INSN, CHECK_INSN, J_PER_INSN = 1000, 50, 1e-9


def _row(mode: str, sample: int, exit_layer: int, checks: int) -> dict[str, str]:
    insn = exit_layer * LAYER_INSN + checks * CHECK_INSN
    return {
        "mode": mode,
        "sample": str(sample),
        "exit_layer": str(exit_layer),
        "macs": str(exit_layer * 100),
        "energy_j": str(insn * J_PER_INSN),
        "instructions": str(insn),
        "insn_other": str(insn),
    }


def _rows() -> list[dict[str, str]]:
    """Three layers; sample 0 exits at 1 (one check), sample 1 runs to the last (two checks)."""
    rows = [_row("full", s, 3, 0) for s in (0, 1)]
    rows += [_row(f"depth-{k}", s, k, 0) for s in (0, 1) for k in (1, 2, 3)]
    return rows + [_row("light", 0, 1, 1), _row("light", 1, 3, 2)]


def test_exit_check_cost_divides_by_the_checks_light_ran():
    cost = exit_check_cost(_rows())
    assert cost is not None and cost["n_pairs"] == 2
    assert cost["instructions_per_check"] == pytest.approx(CHECK_INSN)
    assert cost["energy_uj_per_check"] == pytest.approx(CHECK_INSN * J_PER_INSN * 1e6)
    assert set(cost["by_exit_layer"]) == {"1", "3"}
    assert cost["priced_energy_uj_per_check"] is None
    priced = exit_check_cost(_rows(), {"insn_other": 2e-9})
    assert priced is not None and priced["priced_energy_uj_per_check"] == pytest.approx(CHECK_INSN * 2e-9 * 1e6)


def test_mode_figures_reduce_against_the_baselines_full_mode():
    rows = _rows()
    figures = mode_figures(rows, rows)
    light = figures["light"]
    full_insn, light_insn = 3 * LAYER_INSN, (LAYER_INSN + CHECK_INSN + 3 * LAYER_INSN + 2 * CHECK_INSN) / 2
    assert light["mac_reduction"] == pytest.approx(300 / 200)
    assert light["instruction_reduction"] == pytest.approx(full_insn / light_insn)
    assert light["energy_reduction"] == pytest.approx(full_insn / light_insn)  # energy here is instructions
    assert figures["full"]["pj_per_mac"] == pytest.approx(3 * LAYER_INSN * J_PER_INSN / 300 * 1e12)
    assert figures["depth-1"]["instructions_per_mac"] == pytest.approx(LAYER_INSN / 100)
    no_counts = [{**r, "instructions": ""} for r in rows]
    assert mode_figures(no_counts, no_counts)["light"]["instruction_reduction"] is None
