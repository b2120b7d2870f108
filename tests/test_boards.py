"""Board files: shipped boards load, every validation error is clear."""

from __future__ import annotations

import copy
import tomllib

import pytest

import boards
from boards import BoardError, load_board, parse_board


def _data(name: str = "zcu102") -> dict:
    return tomllib.loads((boards.BOARD_DIR / f"{name}.toml").read_text())


def test_shipped_boards_load_with_paper_numbers():
    assert {"pynq_z2", "zcu102"} <= set(boards.list_boards())
    z = load_board("zcu102")
    assert (z.lut, z.ff, z.dsp, z.bram36, z.uram) == (274080, 548160, 2520, 912, 0)
    assert (z.family, z.clock_mhz, z.axi_data_bits) == ("xcup", 150.0, 128)
    p = load_board("pynq_z2")
    assert (p.lut, p.ff, p.dsp, p.bram36) == (53200, 106400, 220, 140)
    assert (p.family, p.clock_mhz, p.axi_data_bits, p.axi_ports) == ("xc7", 100.0, 64, 4)
    # 16-bit DDR3-1066: 2.13 GB/s peak; DDR4-2133 x 64 bit: 17.06 GB/s peak
    assert p.ddr_peak_gbps == pytest.approx(1.066e9 * 2 / 1e9, rel=1e-3)
    assert z.ddr_peak_gbps == pytest.approx(2.133e9 * 8 / 1e9, rel=1e-3)
    assert z.port_gbps() == pytest.approx(2.4)
    for b in (z, p):
        assert set(b.sources) == set(b.to_dict()) - {"sources"}


def test_load_by_path_and_passthrough(tmp_path):
    f = tmp_path / "myboard.toml"
    text = (boards.BOARD_DIR / "zcu102.toml").read_text().replace('"zcu102"', '"myboard"')
    f.write_text(text)
    b = load_board(str(f))
    assert b.name == "myboard" and load_board(b) is b


def test_unknown_board_lists_known():
    with pytest.raises(BoardError, match=r"unknown board 'zcu999'.*pynq_z2.*zcu102"):
        load_board("zcu999")
    with pytest.raises(BoardError, match="does not exist"):
        load_board("/nonexistent/x.toml")


@pytest.mark.parametrize(
    ("edit", "pattern"),
    [
        (lambda d: d["resources"].update(luts=1), r"unknown key\(s\) \['luts'\] in \[resources\]"),
        (lambda d: d.update(extra={}), r"unknown table\(s\) \['extra'\]"),
        (lambda d: d["resources"].pop("dsp"), r"missing key resources.dsp"),
        (lambda d: d.pop("memory"), r"missing table \[memory\]"),
        (lambda d: d["board"].update(family="xczu"), r"board.family must be one of"),
        (lambda d: d["resources"].update(dsp=-1), r"resources.dsp must be >= 0"),
        (lambda d: d["resources"].update(lut=0), r"resources.lut must be positive"),
        (lambda d: d["resources"].update(ff="many"), r"resources.ff must be int"),
        (lambda d: d["resources"].update(bram36=True), r"resources.bram36 must be int"),
        (lambda d: d["board"].update(clock_mhz=0), r"clock_mhz must be positive"),
        (lambda d: d["board"].update(max_clock_mhz=50.0), r"max_clock_mhz \(50.0\) is below"),
        (lambda d: d["sources"].pop("max_clock_mhz"), r"no source for: max_clock_mhz"),
        (lambda d: d["memory"].update(axi_ports=0), r"axi_ports must be >= 1"),
        (lambda d: d["memory"].update(axi_data_bits=100), r"axi_data_bits must be"),
        (lambda d: d["memory"].update(ddr_efficiency=1.5), r"ddr_efficiency must be in"),
        (lambda d: d["sources"].pop("dsp"), r"no source for: dsp"),
        (lambda d: d["sources"].update(foo="x"), r"\[sources\] names unknown field"),
        (lambda d: d.pop("sources"), r"missing table \[sources\]"),
        (lambda d: d["board"].update(name="my board"), r"board.name must be a non-empty word"),
    ],
)
def test_validation_errors(edit, pattern):
    d = copy.deepcopy(_data())
    parse_board(copy.deepcopy(d), "ok.toml")  # the unedited file is valid
    edit(d)
    with pytest.raises(BoardError, match=pattern):
        parse_board(d, "edited.toml")


def test_bad_toml_and_name_mismatch(tmp_path):
    f = tmp_path / "broken.toml"
    f.write_text("[board\nname=")
    with pytest.raises(BoardError, match="not valid TOML"):
        load_board(str(f))


def test_bandwidth_per_cycle():
    z = load_board("zcu102")
    assert z.ddr_bytes_per_cycle(150.0) == pytest.approx(17.064e9 * z.ddr_efficiency / 150e6)
    with pytest.raises(BoardError, match="clock must be positive"):
        z.ddr_bytes_per_cycle(0)
