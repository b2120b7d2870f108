# amaranth: UnusedElaboratable=no
"""BurstSplitter: (address, beats) commands into AXI4 INCR bursts, against a Python reference.

Every command's bursts cover exactly its beats in order, none crosses a 4 KiB page or exceeds
``max_burst``, and ``last`` marks only its final burst; checked under random command gaps and
burst back-pressure (with a stable payload while stalled) on 32- to 1024-bit buses, with page
edge cases and ``max_burst`` 1. Also: the full-rate pace (a burst per cycle plus one bubble
per command), dropped bad commands and the sticky ``error`` / ``clear_error``, and the
parameter checks the burst masters share (``check_master_params``).
"""

from __future__ import annotations

import random

import pytest
from helpers import AXI_PAGE as PAGE
from helpers import expected_bursts, send_commands, simulate

from filmqnn_hw.gateware.axi.burst_split import BurstSplitter, check_master_params


def reference_bursts(addr: int, beats: int, beat_bytes: int, max_burst: int
                     ) -> list[tuple[int, int, int]]:
    """(address, AxLEN, last) of each burst of one command."""
    bursts = expected_bursts(addr, beats, beat_bytes, max_burst)
    return [(a, n - 1, int(i == len(bursts) - 1)) for i, (a, n) in enumerate(bursts)]


def check_legal(cmds, bursts, beat_bytes: int, max_burst: int) -> None:
    """The AXI rules on ``bursts`` independently of the reference's splitting."""
    it = iter(bursts)
    for addr, beats in cmds:
        covered, nxt = 0, addr
        while covered < beats:
            a, ln, last = next(it)
            n = ln + 1
            assert a == nxt, "bursts of a command must be contiguous"
            assert 1 <= n <= max_burst
            assert a % PAGE + n * beat_bytes <= PAGE, f"burst at {a:#x} x{n} crosses 4 KiB"
            covered += n
            nxt += n * beat_bytes
            assert last == int(covered == beats)
        assert covered == beats
    assert next(it, None) is None, "bursts beyond the commands"


def run_splitter(cmds, *, data_width: int = 32, addr_width: int = 32, len_width: int = 12,
                 max_burst: int = 256, p_cmd: float = 1.0, p_ready: float = 1.0, seed: int = 0
                 ) -> tuple[list[tuple[int, int, int]], dict]:
    """Issue ``cmds`` [(addr, beats)]; return the bursts taken and end-of-run flags."""
    dut = BurstSplitter(addr_width, data_width, len_width, max_burst)
    nb = data_width // 8
    expected = sum(len(reference_bursts(a, n, nb, max_burst)) for a, n in cmds)
    bursts: list[tuple[int, int, int]] = []
    flags: dict = {}

    async def producer(ctx):
        rng = random.Random(seed + 1)
        await send_commands(ctx, dut.cmd, cmds, gap=lambda: rng.random() >= p_cmd)

    async def consumer(ctx):
        rng = random.Random(seed + 2)
        cycles = 0
        first = None
        stalled = None  # payload offered but not taken at the previous edge
        while len(bursts) < expected:
            ready = int(rng.random() < p_ready)
            ctx.set(dut.burst.ready, ready)
            _, _, valid, addr, ln, last, cmd_valid = await ctx.tick().sample(
                dut.burst.valid, dut.burst.p.addr, dut.burst.p.len, dut.burst.p.last,
                dut.cmd.valid)
            if first is None and cmd_valid:
                first = cycles
            if stalled is not None:
                assert valid and (addr, ln, last) == stalled, "payload changed while stalled"
            stalled = (addr, ln, last) if valid and not ready else None
            if valid and ready:
                bursts.append((addr, ln, last))
            cycles += 1
            assert cycles < 20 * (expected + len(cmds)) + 1000, "splitter stalled"
        flags["cycles"] = cycles - (first or 0)
        ctx.set(dut.burst.ready, 1)
        await ctx.tick().repeat(3)
        flags["active"] = ctx.get(dut.active)
        flags["error"] = ctx.get(dut.error)
        flags["valid_after"] = ctx.get(dut.burst.valid)

    simulate(dut, producer, consumer)
    return bursts, flags


def check_run(cmds, *, data_width=32, max_burst=256, **kw) -> dict:
    bursts, flags = run_splitter(cmds, data_width=data_width, max_burst=max_burst, **kw)
    nb = data_width // 8
    assert bursts == [b for a, n in cmds for b in reference_bursts(a, n, nb, max_burst)]
    check_legal(cmds, bursts, nb, max_burst)
    assert flags["active"] == 0 and flags["error"] == 0 and flags["valid_after"] == 0
    return flags


# (data_width, max_burst, commands): the page and length edges
CASES = {
    "one_beat": (32, 256, [(0x100, 1)]),
    "just_below_page_end": (32, 256, [(PAGE - 4, 3)]),          # 1 beat, then the next page
    "ends_at_page_end": (32, 256, [(PAGE - 16, 4)]),            # exactly fills the page: 1 burst
    "exactly_a_page": (32, 256, [(0x3000, PAGE // 4)]),         # 4 x 256 beats
    "page_unaligned_page": (64, 256, [(0x2008, PAGE // 8)]),    # 511 + 1 beats
    "max_len_command": (32, 256, [(0x0FF0, 4095)]),             # len_width 12: 2**12 - 1
    "exact_max_burst": (32, 16, [(0x40, 16), (0x80, 17)]),
    "max_burst_1": (64, 1, [(PAGE - 16, 5), (0x8, 1)]),
    "widest_bus": (1024, 256, [(0x0, 32), (0x80, 32), (PAGE - 128, 2), (0x1F80, 65)]),
    "widest_bus_max_burst_1": (1024, 1, [(PAGE - 256, 3)]),
    "wide_bus_page_longer_than_max": (512, 16, [(0x0, 70)]),    # 64-beat pages, 16-beat cap
    "back_to_back": (32, 256, [(0x10, 3), (0x800, 1), (0x3000 - 4, 2), (0x20, 17),
                               (0x1FFC, 1)]),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("stall", [False, True], ids=["calm", "stalls"])
def test_split_cases(case, stall):
    dw, mb, cmds = CASES[case]
    check_run(cmds, data_width=dw, max_burst=mb, p_cmd=0.5 if stall else 1.0,
              p_ready=0.4 if stall else 1.0, seed=len(case))


@pytest.mark.parametrize("data_width", [32, 64, 128, 256, 512, 1024])
def test_random_commands_against_reference(data_width):
    nb = data_width // 8
    rng = random.Random(data_width)
    cmds = []
    for _ in range(25):
        page = rng.randrange(16) * PAGE
        # half the commands start within four beats of a page end
        off = (PAGE - nb * rng.randint(1, 4)) if rng.random() < 0.5 else nb * rng.randrange(
            PAGE // nb)
        cmds.append((page + off, rng.choice([1, 2, rng.randint(1, 40), rng.randint(1, 700)])))
    for seed, mb in enumerate((256, 7)):
        check_run(cmds, data_width=data_width, max_burst=mb, p_cmd=0.6, p_ready=0.5, seed=seed)


def test_full_rate_one_burst_per_cycle_one_bubble_per_command():
    cmds = [(0x0, 600), (PAGE - 8, 3), (0x5000, 1)]
    n_bursts = sum(len(reference_bursts(a, n, 4, 256)) for a, n in cmds)
    flags = check_run(cmds)
    assert n_bursts == 3 + 2 + 1
    # from the first command's valid to the last burst taken: one acceptance cycle per
    # command, then one burst per cycle
    assert flags["cycles"] == n_bursts + len(cmds)


def test_bad_commands_dropped_and_error_sticky():
    dut = BurstSplitter(16, 32, 8)
    bursts = []
    seen = {}

    async def bench(ctx):
        ctx.set(dut.burst.ready, 1)
        assert ctx.get(dut.error) == 0
        await send_commands(ctx, dut.cmd, [(0x2, 1)])  # address not aligned to the 4-byte beat
        await ctx.tick()
        seen["after_unaligned"] = (ctx.get(dut.error), ctx.get(dut.active),
                                   ctx.get(dut.burst.valid))
        await send_commands(ctx, dut.cmd, [(0x20, 2)])  # a good command does not clear the error
        await ctx.tick().until(~dut.active)
        seen["after_good"] = ctx.get(dut.error)
        ctx.set(dut.clear_error, 1)
        await ctx.tick()
        ctx.set(dut.clear_error, 0)
        seen["cleared"] = ctx.get(dut.error)
        # a bad command in the same cycle as clear_error: the error stays set
        ctx.set(dut.clear_error, 1)
        await send_commands(ctx, dut.cmd, [(0x40, 0)])  # zero beats
        ctx.set(dut.clear_error, 0)
        await ctx.tick()
        seen["bad_wins_over_clear"] = ctx.get(dut.error)
        await ctx.tick().repeat(2)
        seen["no_burst_for_zero"] = ctx.get(dut.burst.valid)

    async def monitor(ctx):
        async for _, _, valid, ready, addr, ln, last in ctx.tick().sample(
                dut.burst.valid, dut.burst.ready, dut.burst.p.addr, dut.burst.p.len,
                dut.burst.p.last):
            if valid and ready:
                bursts.append((addr, ln, last))

    simulate(dut, bench, background=[monitor])
    assert seen["after_unaligned"] == (1, 0, 0)
    assert seen["after_good"] == 1
    assert seen["cleared"] == 0
    assert seen["bad_wins_over_clear"] == 1
    assert seen["no_burst_for_zero"] == 0
    assert bursts == [(0x20, 1, 1)]


def test_active_while_splitting_and_cmd_ready_only_when_idle():
    dut = BurstSplitter(32, 32, 12, max_burst=4)
    trace = []

    async def bench(ctx):
        ctx.set(dut.burst.ready, 1)
        ctx.set(dut.cmd.p.addr, 0x100)
        ctx.set(dut.cmd.p.beats, 10)
        ctx.set(dut.cmd.valid, 1)
        for _ in range(6):
            trace.append((ctx.get(dut.cmd.ready), ctx.get(dut.active), ctx.get(dut.burst.valid)))
            await ctx.tick()
            ctx.set(dut.cmd.valid, 0)

    simulate(dut, bench)
    # accepted in cycle 0, bursts of 4, 4, 2 beats in cycles 1-3, idle again in cycle 4
    assert trace == [(1, 0, 0), (0, 1, 1), (0, 1, 1), (0, 1, 1), (1, 0, 0), (1, 0, 0)]


@pytest.mark.parametrize("args,exc,match", [
    ((32, 64, 0, 256, 4), ValueError, r"len_width must be in \[1, 32\], not 0"),
    ((32, 64, 33, 256, 4), ValueError, r"len_width must be in \[1, 32\], not 33"),
    ((32, 64, 24, 0, 4), ValueError, r"max_burst must be in \[1, 256\] beats, not 0"),
    ((32, 64, 24, 257, 4), ValueError, r"max_burst must be in \[1, 256\] beats, not 257"),
    ((32, 64, 24, 256, 0), ValueError, r"max_outstanding must be in \[1, 64\], not 0"),
    ((32, 64, 24, 256, 65), ValueError, r"max_outstanding must be in \[1, 64\], not 65"),
    ((32, 64, 24.0, 256, 4), TypeError, r"len_width must be an int, not 24\.0"),
    ((32, 64, 24, True, 4), TypeError, r"max_burst must be an int, not True"),
    ((32, 64, 24, 256, "4"), TypeError, r"max_outstanding must be an int, not '4'"),
])
def test_master_param_checks(args, exc, match):
    with pytest.raises(exc, match=match):
        check_master_params(*args)


@pytest.mark.parametrize("args", [(32, 64, 1, 1, 1), (32, 1024, 32, 256, 64)])
def test_master_param_bounds_accepted(args):
    check_master_params(*args)  # the inclusive ends of every range
