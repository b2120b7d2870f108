"""cocotb testbench: AXI4DMA (burst reader + writer on one port) served by cocotbext-axi AxiRam.

Every AXI channel of the RAM gets a seeded random pause generator; the command and data
streams are driven with random idle cycles and random consumer back-pressure. Checks: every
read beat equals RAM contents and ``last`` marks each command's end; every written byte lands
(compared after the matching number of ``wr_done`` pulses); no sticky error.

Parameters (environment, set by tests/gateware/axi/test_cocotb.py): DMA_ADDR_WIDTH, DMA_DATA_WIDTH.
"""

from __future__ import annotations

import os
import random

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge
from cocotbext.axi import AxiBus, AxiRam

ADDR_W = int(os.environ.get("DMA_ADDR_WIDTH", "32"))
DATA_W = int(os.environ.get("DMA_DATA_WIDTH", "64"))
NB = DATA_W // 8
RAM_BYTES = 1 << 16


def pauses(seed: int, p: float):
    rng = random.Random(seed)
    while True:
        yield rng.random() < p


async def send(dut, prefix: str, payloads, seed: int, p_idle: float) -> None:
    """Drive a ready/valid stream: hold valid+payload until ready was high at a clock edge."""
    clk, rng = dut.ap_clk, random.Random(seed)
    valid, ready = getattr(dut, f"{prefix}_valid"), getattr(dut, f"{prefix}_ready")
    payload = getattr(dut, f"{prefix}_payload")
    for v in payloads:
        while rng.random() < p_idle:
            await RisingEdge(clk)
        valid.value = 1
        payload.value = v
        while True:
            await RisingEdge(clk)
            if int(ready.value):
                break
        valid.value = 0


async def receive(dut, count: int, seed: int, p_stall: float) -> list[tuple[int, int]]:
    """Consume ``count`` rd_data beats with random back-pressure; return [(data, last)]."""
    clk, rng = dut.ap_clk, random.Random(seed)
    out = []
    while len(out) < count:
        ready = int(rng.random() >= p_stall)
        dut.rd_data_ready.value = ready
        await RisingEdge(clk)
        if ready and int(dut.rd_data_valid.value):
            v = int(dut.rd_data_payload.value)
            out.append((v & ((1 << DATA_W) - 1), v >> DATA_W))
    dut.rd_data_ready.value = 0
    return out


async def count_done(dut, want: int) -> None:
    seen = 0
    while seen < want:
        await RisingEdge(dut.ap_clk)
        seen += int(dut.wr_done.value)


@cocotb.test()
async def dma_bursts_with_backpressure(dut):
    """Reads and writes of lengths 1, 256, 257, 4 KiB crossings and odd sizes, concurrently."""
    cocotb.start_soon(Clock(dut.ap_clk, 10, unit="ns").start())
    dut.ap_rst_n.value = 0
    for name in ("rd_cmd_valid", "wr_cmd_valid", "wr_data_valid", "rd_data_ready",
                 "clear_error"):
        getattr(dut, name).value = 0
    ram = AxiRam(AxiBus.from_prefix(dut, "m_axi_gmem0"), dut.ap_clk, dut.ap_rst_n,
                 reset_active_level=False, size=RAM_BYTES)
    for i, ch in enumerate((ram.write_if.aw_channel, ram.write_if.w_channel,
                            ram.write_if.b_channel, ram.read_if.ar_channel,
                            ram.read_if.r_channel)):
        ch.set_pause_generator(pauses(100 + i, 0.35))
    rng = random.Random(5)
    image = bytes(rng.getrandbits(8) for _ in range(RAM_BYTES // 2))
    ram.write(0, image)  # reads come from the lower half, writes go to the upper half
    await ClockCycles(dut.ap_clk, 4)
    dut.ap_rst_n.value = 1
    await ClockCycles(dut.ap_clk, 2)

    reads = [(0x100, 1), (0x0, 256), (0x800, 257), (0x1000 - 2 * NB, 9), (0x3000 - NB, 3),
             (0x40, 7), (0x2000 - 5 * NB, 300)]
    writes = [(0x8000, 1), (0x8100, 256), (0x9000, 257), (0xA000 - 2 * NB, 9),
              (0xB000 - NB, 3), (0xB100, 7), (0xC000 - 5 * NB, 300)]
    spans = sorted((a, a + n * NB) for a, n in writes)
    assert all(spans[i][1] <= spans[i + 1][0] for i in range(len(spans) - 1)), "writes overlap"
    assert spans[0][0] >= RAM_BYTES // 2 and spans[-1][1] <= RAM_BYTES
    wdata = [rng.getrandbits(DATA_W) for _ in range(sum(n for _, n in writes))]

    def cmd(addr, beats):
        return addr | beats << ADDR_W

    total = sum(n for _, n in reads)
    rx = cocotb.start_soon(receive(dut, total, 11, 0.3))
    done = cocotb.start_soon(count_done(dut, len(writes)))
    cocotb.start_soon(send(dut, "rd_cmd", [cmd(*c) for c in reads], 12, 0.3))
    cocotb.start_soon(send(dut, "wr_cmd", [cmd(*c) for c in writes], 13, 0.3))
    cocotb.start_soon(send(dut, "wr_data", wdata, 14, 0.2))
    got = await rx
    await done

    want = []
    for addr, beats in reads:
        for i in range(beats):
            a = addr + i * NB
            want.append((int.from_bytes(image[a:a + NB], "little"), int(i == beats - 1)))
    assert got == want
    k = 0
    if os.environ.get("DMA_DEBUG"):
        for addr, beats in writes:
            for i in range(beats):
                v = int.from_bytes(ram.read(addr + i * NB, NB), "little")
                dut._log.info(f"{addr:#x}+{i}: idx {wdata.index(v) if v in wdata else None}")
    for addr, beats in writes:
        for i in range(beats):
            assert ram.read(addr + i * NB, NB) == wdata[k].to_bytes(NB, "little"), (addr, i)
            k += 1
    await ClockCycles(dut.ap_clk, 4)
    assert int(dut.rd_error.value) == 0 and int(dut.wr_error.value) == 0
    assert int(dut.rd_busy.value) == 0 and int(dut.wr_busy.value) == 0
    assert ram.read(0, RAM_BYTES // 2) == image  # reads did not disturb memory
