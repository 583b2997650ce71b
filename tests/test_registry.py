"""The one registry type every kind of thing uses."""

from __future__ import annotations

import sys

import pytest

from ffenergy.registry import Registry, UnknownName


def test_entries_import_on_first_use_and_unknown_names_list_the_known_ones(monkeypatch):
    monkeypatch.delitem(sys.modules, "json.tool", raising=False)
    things: Registry[object] = Registry("thing")
    things.register("tool", "json.tool:main", "a module attribute", fast=True)
    things.register("module", "json.tool")
    assert "json.tool" not in sys.modules  # registering imports nothing
    assert things.names() == ["tool", "module"] and "tool" in things and "other" not in things
    assert things.entry("tool").fact("fast") is True and things.entry("tool").fact("slow", 3) == 3
    main = things.get("tool")
    assert main.__module__ == "json.tool" and things["module"] is sys.modules["json.tool"]
    with pytest.raises(UnknownName, match="unknown thing 'toool'; use one of tool, module"):
        things.get("toool")
    with pytest.raises(ValueError, match="already registered"):
        things.register("tool", "json:dumps")
    things.unregister("tool")
    things.register("tool", len)  # objects register directly too
    assert things.get("tool") is len
