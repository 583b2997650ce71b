import re

import numpy as np
import pytest

from ffenergy.firmware.arrays import ExitPolicy
from ffenergy.firmware.deployed import MODEL_NAME_MAX
from ffenergy.firmware.export import BOARDS, ModelTooLarge, deploy, export_model, header_text
from ffenergy.firmware.launch import build_firmware
from tests.firmware.fw_helpers import make_inputs, make_net


def _policy(n_layers=3):
    return ExitPolicy("gap", np.zeros(n_layers, np.float32))


def test_board_table():
    assert (BOARDS["qemu-mps2-an386"].flash_bytes, BOARDS["qemu-mps2-an386"].ram_bytes) == (4 << 20, 4 << 20)
    assert (BOARDS["nucleo-l476rg"].flash_bytes, BOARDS["nucleo-l476rg"].ram_bytes) == (1 << 20, 128 << 10)
    assert (BOARDS["nrf52840"].flash_bytes, BOARDS["nrf52840"].ram_bytes) == (1 << 20, 256 << 10)
    assert (BOARDS["mcu-256k"].flash_bytes, BOARDS["mcu-256k"].ram_bytes) == (256 << 10, 64 << 10)


def test_mcu_sized_int8_mp_fits_256k_and_logs_use(tmp_path, caplog):
    net = make_net("mp", dims=[784, 128, 128, 128], n_classes=10)
    with caplog.at_level("INFO", logger="ffenergy.firmware.export"):
        rep = export_model(net, _policy(), tmp_path, "int8", "mcu-256k", calib_x=make_inputs(20, 784))
    out = caplog.text
    assert re.search(r"flash [\d,]+ / 262,144 B .*RAM [\d,]+ / 65,536 B", out), out
    assert 784 * 128 + 2 * 128 * 128 < rep.flash_used <= 256 << 10 and rep.ram_used <= 64 << 10
    assert (tmp_path / "model.h").stat().st_size > 0


def test_f32_too_large_is_refused_saying_by_how_much(tmp_path):
    net = make_net("mp", dims=[784, 128, 128, 128], n_classes=10)
    with pytest.raises(ModelTooLarge, match=r"flash needs [\d,]+ B of 262,144 B \(over by [\d,]+ B\).*int8"):
        export_model(net, _policy(), tmp_path, "f32", "mcu-256k")
    assert not (tmp_path / "model.h").exists()


def test_bad_requests_name_the_fix(tmp_path):
    net = make_net("mp")
    with pytest.raises(ValueError, match="calib_x"):
        deploy(net, _policy(), "int8")
    with pytest.raises(ValueError, match="unknown board 'uno'"):
        export_model(net, _policy(), tmp_path, "f32", "uno")
    with pytest.raises(ValueError, match="3 layers"):
        deploy(net, _policy(2))
    with pytest.raises(ValueError, match="prune_keep"):
        deploy(net, ExitPolicy("gap", np.zeros(3, np.float32), prune_after=1, prune_keep=4))


def test_int8_quantisation_is_symmetric_per_channel_and_close():
    net = make_net("op")
    x = make_inputs(50)
    m = deploy(net, _policy(), "int8", calib_x=x)
    for w, q, s in zip(net.weights, m.weights, m.w_scale):
        assert q.dtype == np.int8 and np.abs(q).max() == 127 and np.all(np.abs(q).max(axis=1) == 127)
        assert s.shape == (w.shape[0],)
    per_layer = deploy(net, _policy(), "int8", calib_x=x, per_channel=False)
    assert np.ptp(per_layer.w_scale[0] / m.in_inv_scale[0] ** -1) < 1e-6 * per_layer.w_scale[0].max()


def test_header_is_exact_hex_floats():
    net = make_net("mp")
    text = header_text(deploy(net, _policy(), "f32"))
    first = re.search(r"ff_w0\[\d+\] = \{([^,]+),", text).group(1)
    assert float.fromhex(first.rstrip("f")) == float(net.weights[0][0, 0])
    assert "#define FF_N_LAYERS 3" in text and "#define FF_PROC_OP 0" in text


def test_model_name_is_bounded_at_export_and_in_the_header(tmp_path):
    net = make_net("mp")
    with pytest.raises(ValueError, match=r"model name 'nnn.*\(65 characters\).*MODEL_NAME_MAX = 64"):
        export_model(net, _policy(), tmp_path, name="n" * (MODEL_NAME_MAX + 1))
    assert not (tmp_path / "model.h").exists()
    text = header_text(deploy(net, _policy(), name="n" * MODEL_NAME_MAX))
    assert f"#define FF_MODEL_NAME_MAX {MODEL_NAME_MAX}\n" in text


def test_a_header_from_an_older_export_fails_to_build_saying_export_again(tmp_path):
    export_model(make_net("mp"), _policy(), tmp_path, board="host")
    header = tmp_path / "model.h"
    header.write_text("".join(line for line in header.read_text().splitlines(True) if "FF_MODEL_NAME_MAX" not in line))
    with pytest.raises(RuntimeError, match="no FF_MODEL_NAME_MAX.*older ffenergy export; export the model again"):
        build_firmware(tmp_path, "host", tmp_path / "build")
