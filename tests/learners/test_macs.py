import numpy as np
import pytest

from ffenergy.learners.ff.macs import candidates_per_layer, mp_layer_macs, mp_layer_macs_naive, op_layer_macs


def test_naive_mp_macs_match_hand_count_for_the_paper_network():
    # 784-2000x4, C = 10: 10 * 784 * 2000 at layer 1, then + 10 * 2000 * 2000 per layer
    macs = np.cumsum(mp_layer_macs_naive([784, 2000, 2000, 2000, 2000], 10))
    assert macs.tolist() == [15_680_000, 55_680_000, 95_680_000, 135_680_000]
    assert macs[-1] / macs[0] == pytest.approx(8.653, abs=1e-3)  # the cap the paper's 10.4x exceeds


def test_factorised_mp_runs_layer_1_once_plus_one_label_column_per_candidate():
    # 784-2000x4, C = 10: 774 * 2000 image product + 10 label columns of 2000 = 1.568 M at layer 1
    macs = np.cumsum(mp_layer_macs([784, 2000, 2000, 2000, 2000], 10))
    assert macs.tolist() == [1_568_000, 41_568_000, 81_568_000, 121_568_000]
    # dims 6-4-3, C = 2, pruned to 1 after layer 1: (6 - 2) * 4 + 2 * 4 = 24, then 1 * 12
    assert mp_layer_macs([6, 4, 3], 2, 1, 1).tolist() == [24, 12]
    assert mp_layer_macs_naive([6, 4, 3], 2, 1, 1).tolist() == [2 * 24, 12]


def test_op_macs_count_layers_and_every_head_up_to_the_exit():
    # dims 6-4-3, C = 2: layer costs 24, 12; head inputs 4, 7 -> head costs 8, 14
    assert np.cumsum(op_layer_macs([6, 4, 3], 2)).tolist() == [24 + 8, 24 + 8 + 12 + 14]
    # the note's figure for 784-2000x4: 1.588 M at k = 1, 13.768 M at k = 4
    op = np.cumsum(op_layer_macs([784, 2000, 2000, 2000, 2000], 10))
    assert (op[0], op[-1]) == (1_588_000, 13_768_000)


def test_label_pruning_runs_only_the_kept_candidates_after_the_pruning_layer():
    assert candidates_per_layer(4, 10, prune_after=1, prune_keep=2) == [10, 2, 2, 2]
    assert candidates_per_layer(4, 10, prune_after=2, prune_keep=3) == [10, 10, 3, 3]
    assert candidates_per_layer(4, 10) == [10] * 4
    dims = [5, 4, 3, 2]
    assert mp_layer_macs_naive(dims, 10, 1, 2).tolist() == [10 * 20, 2 * 12, 2 * 6]
    assert mp_layer_macs(dims, 10, 1, 2).tolist() == [20, 2 * 12, 2 * 6]
