"""``filmqnn_hw.spec.geometry``: the memories the resource model prices are the engine's."""

from __future__ import annotations

import pytest
from amaranth.hdl import Fragment, MemoryInstance, Shape

from filmqnn_hw.gateware.engine import ProgramEngine
from filmqnn_hw.spec.config import AcceleratorConfig
from filmqnn_hw.spec.geometry import rtl_memories

CONFIGS = {
    "G8": AcceleratorConfig.small(act_pack=8, axi_data_bits=128),
    "G4x2": AcceleratorConfig.small(tm=8, tn=4, n8_slots=1, act_pack=4, axi_data_bits=64, tr=3,
                                    tc=6).replace(axi_ports=2),
    "G6x3": AcceleratorConfig.small(tm=12, tn=12, n8_slots=1, act_pack=6, axi_data_bits=128,
                                    tr=4, tc=8).replace(axi_ports=3, ddr_bytes_per_cycle=40.0),
}


def _engine_memories(cfg: AcceleratorConfig) -> list[tuple[str, int, int, int, int]]:
    """(name, width, depth, read ports, write granularity) of every buffer Memory in the
    elaborated engine."""
    frag = Fragment.get(ProgramEngine(cfg), None)
    found = []

    def walk(f, name):
        for sub, subname, *_ in f.subfragments:
            if isinstance(sub, MemoryInstance):
                if subname == "storage":  # a lib.fifo's few words: LUTRAM, not a buffer
                    continue
                width = Shape.cast(sub._data.shape).width
                (wp,) = sub._write_ports
                gran = width // len(wp._en)
                found.append((subname, width, sub._data.depth, len(sub._read_ports), gran))
            else:
                walk(sub, subname)

    walk(frag, "engine")
    return found


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_memory_list_is_what_the_engine_builds(name):
    cfg = CONFIGS[name]
    built = _engine_memories(cfg)
    listed = []
    for mem in rtl_memories(cfg):
        listed += [(mem.width, mem.depth, mem.read_ports, mem.granularity or mem.width)
                   ] * mem.count
    assert sorted(b[1:] for b in built) == sorted(listed)
