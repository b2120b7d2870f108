"""hls_compat.compile_csim / include_dir: clear errors, no half-written executables."""

from __future__ import annotations

from pathlib import Path

import pytest

from hls_compat import CXXFLAGS, CsimError, compile_csim, include_dir


def test_include_dir_holds_the_headers() -> None:
    for name in ("ap_int.h", "hls_stream.h", "ap_axi_sdata.h"):
        assert (include_dir() / name).is_file()
    assert "-Wno-unknown-pragmas" in CXXFLAGS and "-std=c++17" in CXXFLAGS


def test_compile_error_is_reported_and_nothing_written(tmp_path: Path) -> None:
    src = tmp_path / "bad.cpp"
    # ap_int<100> * ap_int<40> needs 140 bits: a compile-time error, never a silent wrap.
    src.write_text('#include "ap_int.h"\nint main() { ap_int<100> a; ap_int<40> b;\n'
                   "  auto p = a * b; (void)p; return 0; }\n")
    out = tmp_path / "bad"
    with pytest.raises(CsimError, match="hls_compat supports W <= 128"):
        compile_csim([src], out)
    assert not out.exists()
    assert list(tmp_path.iterdir()) == [src]  # no temporary left behind


def test_missing_source_and_compiler(tmp_path: Path) -> None:
    with pytest.raises(CsimError, match="not found"):
        compile_csim([tmp_path / "nope.cpp"], tmp_path / "x")
    with pytest.raises(CsimError, match="no source files"):
        compile_csim([], tmp_path / "x")
    src = tmp_path / "ok.cpp"
    src.write_text("int main() { return 0; }\n")
    with pytest.raises(CsimError, match="compiler 'no-such-g\\+\\+' not found"):
        compile_csim([src], tmp_path / "x", cxx="no-such-g++")


@pytest.mark.parametrize(
    "body",
    [
        "ap_uint<8> x = 0; ap_uint<4> y = 0; (x.range(7, 4), y) = 5;",  # would write nothing
        "ap_uint<8> x = 0; ap_uint<4> y = 0; (x, y) += 5;",  # no compound on a concatenation
        "ap_int<8>(3) = 5;",  # assignment to a temporary
        "ap_int<129> x; (void)x;",  # wider than the supported maximum
        "ap_uint<128> x = 1; auto y = x + 1; (void)y;",  # 129-bit result type
    ],
)
def test_silent_no_ops_do_not_compile(tmp_path: Path, body: str) -> None:
    src = tmp_path / "neg.cpp"
    src.write_text(f'#include "ap_int.h"\nint main() {{ {body} return 0; }}\n')
    with pytest.raises(CsimError, match="error"):
        compile_csim([src], tmp_path / "neg", extra_flags=["-fsyntax-only"])
