"""The simulation Verilog's folding of repeated bits: the same bits, written as replications.

Oracle: expanding every `{n{x}}` back into n copies of `x` gives yosys's text exactly; the
Verilator runs of every tests/test_sim_*.py check the behaviour of the simulation Verilog
(`SIMULATION_PASSES` included) against the golden model.
"""

import re

import pytest

from fpgacnn.config import HardwareConfig
from fpgacnn.hw.verilog import (engine_top, fold_repeated_bits, simulation_verilog_text,
                                unfolded_simulation_verilog)

REPLICATION = re.compile(r"\{(\d+)\{([^{}]+)\}\}")
RUN_OF_BITS = re.compile(r"(?<![\w$\]])((?:\\\S+ |[A-Za-z_][\w$]*)\[\d+\]), \1(?![\w$])")


def unfold(text):
    return REPLICATION.sub(lambda m: ", ".join([m.group(2)] * int(m.group(1))), text)


@pytest.mark.parametrize("line, folded", [
    ("{ a[7], a[7], a[7], a }", "{ {3{a[7]}}, a }"),
    ("{ b[7], a[7], a[7] }", "{ b[7], {2{a[7]}} }"),
    (r"{ \$12 [34], \$12 [34], \$12 [34:0] }", r"{ {2{\$12 [34]}}, \$12 [34:0] }"),
    ("{ a[7], ba[7], a[7] }", "{ a[7], ba[7], a[7] }"),
    ("{ xa[7], a[7] }", "{ xa[7], a[7] }"),
    ("{ a[7], a[70] }", "{ a[7], a[70] }"),
    ("{ a[7], a[7]_x }", "{ a[7], a[7]_x }"),
    ("{ a[7:0], a[7:0] }", "{ a[7:0], a[7:0] }"),
])
def test_fold_cases(line, folded):
    assert fold_repeated_bits(line) == folded


def test_engine_verilog_folds_to_the_same_bits():
    top = engine_top(HardwareConfig(tm=4, tn=8, tr=4, tc=4, max_kernel=3))
    original = unfolded_simulation_verilog(top)
    folded = simulation_verilog_text(top)
    assert REPLICATION.search(original) is None
    assert len(REPLICATION.findall(folded)) > 50        # the sign extensions were found
    assert RUN_OF_BITS.search(folded) is None
    assert unfold(folded) == original
