"""QEMU tests skip only when HIL_REQUIRE_QEMU is unset and the tools are missing; otherwise they fail."""

import pytest

from tests.firmware.fw_helpers import require_qemu


def test_missing_tools_skip_without_the_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("HIL_REQUIRE_QEMU", raising=False)
    with pytest.raises(pytest.skip.Exception, match="qemu-system-arm"):
        require_qemu()


def test_missing_tools_fail_loudly_with_the_env_var(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("HIL_REQUIRE_QEMU", "1")
    with pytest.raises(pytest.fail.Exception, match="HIL_REQUIRE_QEMU is set but .*apt-get install"):
        require_qemu()
