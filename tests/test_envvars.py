"""``common.envvars.environ``: variables set for a block and put back exactly as they were."""

from __future__ import annotations

import os

import pytest

from rl_autoscaling.common.envvars import environ


def test_values_are_set_in_the_block_and_restored_after(monkeypatch):
    monkeypatch.setenv("RLA_SET", "before")
    monkeypatch.setenv("RLA_EMPTY", "")
    monkeypatch.delenv("RLA_UNSET", raising=False)
    with environ({"RLA_SET": "inside", "RLA_EMPTY": "x", "RLA_UNSET": "new"}):
        assert (os.environ["RLA_SET"], os.environ["RLA_EMPTY"], os.environ["RLA_UNSET"]) == (
            "inside", "x", "new")
    assert os.environ["RLA_SET"] == "before"
    assert os.environ["RLA_EMPTY"] == ""  # empty stays empty, not unset
    assert "RLA_UNSET" not in os.environ  # unset stays unset, not empty


def test_none_unsets_for_the_block_and_an_exception_still_restores(monkeypatch):
    monkeypatch.setenv("RLA_SET", "before")
    monkeypatch.delenv("RLA_UNSET", raising=False)
    with pytest.raises(RuntimeError, match="boom"), environ({"RLA_SET": None, "RLA_UNSET": ""}):
        assert "RLA_SET" not in os.environ and os.environ["RLA_UNSET"] == ""
        raise RuntimeError("boom")
    assert os.environ["RLA_SET"] == "before" and "RLA_UNSET" not in os.environ
