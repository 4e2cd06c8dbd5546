"""The file formats: strict grammars of .coe (Vivado) and .mif (Quartus), .mem read by
Verilator's $readmemh/$readmemb, readers of hand-written files."""

import re
import shutil
import subprocess

import numpy as np
import pytest

from fpgacnn.errors import UserError
from fpgacnn.export import FileOptions, Layout, read_rows, read_tensor, write_tensor

SEED_LAYOUT = Layout("(k j) (p i) x y -> (p k x y) (i j)", {"j": 2, "i": 16}, bits=16,
                     msb_first=True)


def seed_weights(seed=0):
    return np.random.default_rng(seed).integers(-2**15, 2**15, size=(4, 32, 3, 3))


def seed_words(w):
    """Seed 000's loop, written out: 32 values per line, first value leftmost, d2b strings."""
    lines = []
    for p in range(2):
        for k in range(2):
            for x in range(3):
                for y in range(3):
                    lines.append("".join(format(int(w[2 * k + j, 16 * p + i, x, y]) & 0xFFFF,
                                                "016b") for i in range(16) for j in range(2)))
    return lines


@pytest.mark.parametrize("radix", [2, 16])
def test_coe_grammar_is_what_vivado_reads(tmp_path, radix):
    w = seed_weights()
    write_tensor(tmp_path / "w.coe", w, SEED_LAYOUT, "coe", FileOptions(radix=radix), "w")
    text = (tmp_path / "w.coe").read_text()
    digit = "[01]" if radix == 2 else "[0-9a-f]"
    width = 512 if radix == 2 else 128
    grammar = (rf"(;[^\n]*\n)*memory_initialization_radix={radix};\n"
               rf"memory_initialization_vector=\n({digit}{{{width}}},\n)*{digit}{{{width}}};\n")
    assert re.fullmatch(grammar, text)
    words = re.findall(rf"{digit}{{{width}}}(?=[,;])", text)
    expected = seed_words(w)
    if radix == 16:
        expected = [format(int(s, 2), "0128x") for s in expected]
    assert words == expected


@pytest.mark.parametrize("radix", [2, 16])
def test_mif_grammar_is_what_quartus_reads(tmp_path, radix):
    x = np.random.default_rng(2).integers(0, 2**12, size=(11, 3))
    layout = Layout("a b -> a b", bits=12, signed=False)
    write_tensor(tmp_path / "x.mif", x, layout, "mif", FileOptions(radix=radix), "x")
    lines = (tmp_path / "x.mif").read_text().splitlines()
    comment = [ln for ln in lines if ln.startswith("--")]
    body = [ln for ln in lines if ln.strip() and not ln.startswith("--")]
    assert len(comment) == 1
    assert body[:5] == ["WIDTH=36;", "DEPTH=11;", "ADDRESS_RADIX=UNS;",
                        f"DATA_RADIX={'BIN' if radix == 2 else 'HEX'};", "CONTENT BEGIN"]
    assert body[-1] == "END;"
    digit, width = ("[01]", 36) if radix == 2 else ("[0-9a-fA-F]", 9)
    entries = [re.fullmatch(rf"\s*(\d+)\s*:\s*({digit}{{{width}}});", ln) for ln in body[5:-1]]
    assert all(entries)
    assert [int(m[1]) for m in entries] == list(range(11))
    expected = [(int(r[2]) << 24) | (int(r[1]) << 12) | int(r[0]) for r in x]
    assert [int(m[2], radix) for m in entries] == expected


VERILOG_TB = """
module tb;
  reg [19:0] hex_mem [0:6];
  reg [19:0] bin_mem [0:6];
  integer i;
  initial begin
    $readmemh("{hex}", hex_mem);
    $readmemb("{bin}", bin_mem);
    for (i = 0; i < 7; i = i + 1) $display("%h %h", hex_mem[i], bin_mem[i]);
    $finish;
  end
endmodule
"""


@pytest.mark.skipif(shutil.which("verilator") is None, reason="verilator is not installed")
def test_mem_is_read_by_verilator_readmem(tmp_path):
    x = np.random.default_rng(3).integers(-16, 16, size=(7, 4))
    layout = Layout("a b -> a b", bits=5)
    write_tensor(tmp_path / "x_hex.mem", x, layout, "mem", FileOptions(radix=16), "x")
    write_tensor(tmp_path / "x_bin.mem", x, layout, "mem",
                 FileOptions(radix=2, address_every=3), "x")
    assert "@3" in (tmp_path / "x_bin.mem").read_text()
    (tmp_path / "tb.v").write_text(VERILOG_TB.replace("{hex}", str(tmp_path / "x_hex.mem"))
                                   .replace("{bin}", str(tmp_path / "x_bin.mem")))
    subprocess.run(["verilator", "--binary", "-Wno-fatal", "--Mdir", str(tmp_path / "obj"),
                    "--top-module", "tb", str(tmp_path / "tb.v")],
                   check=True, capture_output=True, timeout=300)
    out = subprocess.run([str(tmp_path / "obj" / "Vtb")], check=True, capture_output=True,
                         text=True, timeout=60).stdout
    printed = [line.split() for line in out.splitlines() if re.fullmatch(r"\S+ \S+", line)]
    expected = [sum((int(v) & 31) << (5 * lane) for lane, v in enumerate(row)) for row in x]
    assert [int(a, 16) for a, _ in printed] == expected
    assert [int(b, 16) for _, b in printed] == expected


def test_readers_accept_hand_written_files(tmp_path):
    layout = Layout("a b -> a b", bits=8, signed=False)
    (tmp_path / "a.coe").write_text("; comment\nMEMORY_INITIALIZATION_RADIX = 16 ;\n"
                                    "memory_initialization_vector = 102, 304 ,\n 0506;\n")
    np.testing.assert_array_equal(read_tensor(tmp_path / "a.coe", layout, (3, 2), "coe"),
                                  [[2, 1], [4, 3], [6, 5]])
    (tmp_path / "a.mem").write_text("// c\n@1\n0102 /* x */ 0304\n")
    np.testing.assert_array_equal(read_rows(tmp_path / "a.mem", layout, 2, "mem"),
                                  [[0, 0], [2, 1], [4, 3]])
    (tmp_path / "a.mif").write_text("WIDTH=16;\nDEPTH=4;\nADDRESS_RADIX=HEX;\n"
                                    "DATA_RADIX=HEX;\nCONTENT BEGIN\n  [0..1] : 0a0b;\n"
                                    "  3 : 0102; -- last\nEND;\n")
    np.testing.assert_array_equal(read_rows(tmp_path / "a.mif", layout, 2, "mif"),
                                  [[11, 10], [11, 10], [0, 0], [2, 1]])


def test_reader_errors_name_the_file(tmp_path):
    layout = Layout("a b -> a b", bits=4)
    (tmp_path / "x.mem").write_text("1g\n")
    with pytest.raises(UserError, match=r"x\.mem: word 0 has 'g', not a radix-16 digit"):
        read_rows(tmp_path / "x.mem", layout, 2, "mem")
    (tmp_path / "y.mem").write_text("1ff\n")
    with pytest.raises(UserError, match=r"y\.mem: word 0 has bits set above"):
        read_rows(tmp_path / "y.mem", layout, 2, "mem")
    (tmp_path / "z.bin").write_bytes(b"\x01\x02\x03")
    with pytest.raises(UserError, match="not a whole number of 2-byte words"):
        read_rows(tmp_path / "z.bin", Layout("a b -> a b", bits=8), 2, "bin")
    (tmp_path / "w.bin").write_bytes(b"\x11")
    with pytest.raises(UserError, match="holds 1 words, the layout needs 2"):
        read_tensor(tmp_path / "w.bin", layout, (2, 2), "bin")
    with pytest.raises(UserError, match="no such file"):
        read_rows(tmp_path / "missing.coe", layout, 2, "coe")


C_PROGRAM = """
#include <stdio.h>
#include "narrow.h"
#include "wide.h"
int main(void) {
    for (int r = 0; r < NARROW_ROWS; r++) printf("%llx\\n", (unsigned long long)NARROW[r]);
    for (int r = 0; r < WIDE_ROWS; r++) {
        for (int k = (WIDE_WORD_BITS + 31) / 32 - 1; k >= 0; k--) printf("%08x", WIDE[r][k]);
        printf("\\n");
    }
    return 0;
}
"""


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_c_header_compiles_and_holds_the_words(tmp_path):
    rng = np.random.default_rng(4)
    narrow = rng.integers(-2**11, 2**11, size=(5, 3))
    wide = rng.integers(-2**15, 2**15, size=(4, 5))
    write_tensor(tmp_path / "narrow.h", narrow, Layout("a b -> a b", bits=12), "h", name="narrow")
    write_tensor(tmp_path / "wide.h", wide, Layout("a b -> a b", bits=16, msb_first=True), "h",
                 name="wide")
    (tmp_path / "main.c").write_text(C_PROGRAM)
    subprocess.run(["cc", "-std=c99", "-Wall", "-Werror", "-I", str(tmp_path), "-o",
                    str(tmp_path / "main"), str(tmp_path / "main.c")], check=True,
                   capture_output=True, timeout=120)
    out = subprocess.run([str(tmp_path / "main")], check=True, capture_output=True, text=True,
                         timeout=60).stdout.split()
    expected_narrow = [sum((int(v) & 0xFFF) << (12 * k) for k, v in enumerate(row))
                       for row in narrow]
    expected_wide = [sum((int(v) & 0xFFFF) << (16 * (4 - k)) for k, v in enumerate(row))
                     for row in wide]
    assert [int(w, 16) for w in out[:5]] == expected_narrow
    assert [int(w, 16) for w in out[5:]] == expected_wide
