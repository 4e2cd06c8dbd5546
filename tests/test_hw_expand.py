"""Expander against nested Python loops over output pixels and kernel positions."""

from amaranth.sim import Simulator
from hypothesis import Phase, given, settings, strategies as st

from fpgacnn.config import HardwareConfig
from fpgacnn.hw.expand import Expander

CONFIG = HardwareConfig(tm=4, tn=4, tr=6, tc=6, max_kernel=11, max_stride=4,
                        ddr_width_bits=32)
NO_SHRINK = (Phase.explicit, Phase.reuse, Phase.generate)


def model(g):
    """The im2col walk written plainly: (addr or None if padding, kk, first, last, seq, pf, pl)."""
    out = []
    p = 2 if g["pool"] else 1
    pixels = [(R * p + dr, C * p + dc) for R in range(g["th"] // p) for C in range(g["tw"] // p)
              for dr in range(p) for dc in range(p)]
    for seq, (r, c) in enumerate(pixels):
        dr, dc = r % p, c % p
        for ky in range(g["kh"]):
            for kx in range(g["kw"]):
                iy = g["iy0"] + r * g["sh"] + ky
                ix = g["ix0"] + c * g["sw"] + kx
                inside = 0 <= iy < g["in_h"] and 0 <= ix < g["in_w"]
                addr = (iy - g["iy_lo"]) * g["lw"] + ix - g["ix_lo"] if inside else None
                if inside:
                    assert 0 <= addr < g["lw"] * (g["in_h"] - g["iy_lo"])
                out.append((addr, ky * g["kw"] + kx, ky == 0 and kx == 0,
                            ky == g["kh"] - 1 and kx == g["kw"] - 1, seq,
                            dr == 0 and dc == 0, dr == p - 1 and dc == p - 1))
    return out


def simulate(g):
    dut = Expander(CONFIG)
    out = []

    async def bench(ctx):
        for name, value in g.items():
            ctx.set(getattr(dut, name), value)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        ending = False
        while ctx.get(dut.busy):
            if out:
                assert not ending, "ending was raised before the last output"
            ending = ctx.get(dut.ending)
            pad = ctx.get(dut.pad)
            out.append((None if pad else ctx.get(dut.addr), ctx.get(dut.kk),
                        bool(ctx.get(dut.first)), bool(ctx.get(dut.last)), ctx.get(dut.seq),
                        bool(ctx.get(dut.pool_first)), bool(ctx.get(dut.pool_last))))
            await ctx.tick()
        assert ending, "ending was not raised with the last output"

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return out


@st.composite
def geometries(draw):
    pool = draw(st.booleans())
    kh, kw = draw(st.integers(1, 11)), draw(st.integers(1, 11))
    sh, sw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    th = draw(st.sampled_from([2, 4, 6]) if pool else st.integers(1, 6))
    tw = draw(st.sampled_from([2, 4, 6]) if pool else st.integers(1, 6))
    pt, pl = draw(st.integers(0, min(kh - 1, 5))), draw(st.integers(0, min(kw - 1, 5)))
    ty0, tx0 = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    iy0, ix0 = ty0 * sh - pt, tx0 * sw - pl
    ih, iw = (th - 1) * sh + kh, (tw - 1) * sw + kw
    in_h = draw(st.integers(max(1, iy0 + 1), iy0 + ih + 2))
    in_w = draw(st.integers(max(1, ix0 + 1), ix0 + iw + 2))
    iy_lo, ix_lo = max(iy0, 0), max(ix0, 0)
    lw = min(ix0 + iw, in_w) - ix_lo
    return dict(th=th, tw=tw, kh=kh, kw=kw, sh=sh, sw=sw, pool=int(pool), lw=lw, iy0=iy0,
                ix0=ix0, iy_lo=iy_lo, ix_lo=ix_lo, in_h=in_h, in_w=in_w)


@settings(max_examples=40, deadline=None, phases=NO_SHRINK)
@given(geometries())
def test_expander_walks_like_nested_loops(g):
    assert simulate(g) == model(g)
