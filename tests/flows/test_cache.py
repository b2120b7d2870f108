"""The build cache: a repeat build reuses the design search and the Verilog top; any change of
the inputs or of a generator source misses."""

from __future__ import annotations

import pytest

from filmqnn_hw.build import main
from filmqnn_hw.flows import cache


def test_keys_follow_the_inputs_and_every_generator_source(tmp_path, monkeypatch):
    k = cache.cache_key("verilog", "cfg-a")
    assert k == cache.cache_key("verilog", "cfg-a")
    assert k != cache.cache_key("verilog", "cfg-b") != cache.cache_key("design", "cfg-a")
    # a copy of the sources with one generator file edited gives other keys
    src = tmp_path / "src"
    src.mkdir()
    (src / "engine.py").write_text("DIM = 12\n")
    roots = cache._source_roots()
    monkeypatch.setattr(cache, "_source_roots", lambda: [*roots, src])
    cache.source_digest.cache_clear()
    with_src = cache.cache_key("verilog", "cfg-a")
    (src / "engine.py").write_text("DIM = 13\n")
    cache.source_digest.cache_clear()
    assert cache.cache_key("verilog", "cfg-a") != with_src != k
    monkeypatch.undo()
    cache.source_digest.cache_clear()
    assert cache.cache_key("verilog", "cfg-a") == k


def test_entries_round_trip_and_a_damaged_one_is_a_miss(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "c"))
    assert cache.load("design", "k") is None
    cache.store("design", "k", "text")
    assert cache.load("design", "k") == "text"
    (tmp_path / "c" / "design" / "k.txt").write_bytes(b"\xff\xfe")
    assert cache.load("design", "k") is None


def test_a_repeat_build_reuses_the_search_and_the_top(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))
    first, again, fresh = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert main(["pynq_z2", "--out", str(first)]) == 0
    out = capsys.readouterr().out
    assert "searching the design space" in out and "emitting the Verilog top" in out
    assert main(["pynq_z2", "--out", str(again)]) == 0
    out = capsys.readouterr().out
    assert "design search of pynq_z2 for resnet18, resnet50, mobilenet_v2: from the build " \
           "cache" in out and "Verilog top: from the build cache" in out
    for f in ("config.json", "report.json", "rtl/filmqnn_top.v", "rtl/control_map.json"):
        assert (again / f).read_bytes() == (first / f).read_bytes(), f
    # another option misses; --no-cache searches again
    assert main(["pynq_z2", "--out", str(fresh), "--no-rtl", "--lut-cap", "0.7"]) == 0
    assert "searching the design space" in capsys.readouterr().out
    assert main(["pynq_z2", "--out", str(fresh), "--no-rtl", "--no-cache"]) == 0
    assert "searching the design space" in capsys.readouterr().out


@pytest.mark.parametrize("damage", ["{not json", ""])
def test_a_damaged_design_entry_searches_again(tmp_path, monkeypatch, capsys, damage):
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))
    assert main(["pynq_z2", "--out", str(tmp_path / "a"), "--no-rtl"]) == 0
    for entry in (tmp_path / "cache" / "design").iterdir():
        entry.write_text(damage)
    capsys.readouterr()
    assert main(["pynq_z2", "--out", str(tmp_path / "b"), "--no-rtl"]) == 0
    assert "searching the design space" in capsys.readouterr().out
