"""What a tiling of the layer-serial engine costs in DSP slices and RAMB18 units.

Two models, each written once; both take numpy arrays of tile sizes (the explorer's designs):

- `EngineResources` (the default): the engine as hw/ generates it, MAC array (two INT8 MACs
  per slice where they pack) and post-processing lanes (`plan.dsp.engine_dsps`; no DSP in
  shift-only lanes, `post_multipliers = false`), one full-width memory per buffer
  (`plan.bram.engine_bram18`); yosys agrees with both (docs/planning.md).
- `MacArrayResources`: Zhang et al.'s (FPGA'15) assumptions, for published cross-checks:
  `ceil(Tm Tn per_mac)` DSPs for the MAC array alone, and buffers partitioned into Tn/Tm banks.

>>> from fpgacnn.config import HardwareConfig
>>> cfg = HardwareConfig(tm=4, tn=4)
>>> int(EngineResources("DSP48E1").dsp(cfg, 4, 4)), int(MacArrayResources(1).dsp(cfg, 4, 4))
(32, 16)
"""

from dataclasses import dataclass

import numpy as np

from fpgacnn.config import HardwareConfig
from fpgacnn.plan.bram import bram18_count_array, engine_bram18
from fpgacnn.plan.dsp import engine_dsps


@dataclass(frozen=True)
class EngineResources:
    """The engine as generated, on DSP slices of `dsp_type`."""

    dsp_type: str
    name: str = "engine"

    def dsp(self, config: HardwareConfig, tm, tn):
        return engine_dsps(tm, tn, config.act_bits, config.weight_bits, config.acc_bits,
                           self.dsp_type, post_multipliers=config.post_multipliers)

    def bram18(self, config: HardwareConfig, tm, tn, tr, tc, max_kernel, max_stride):
        return engine_bram18(tm, tn, tr, tc, config.act_bits, config.weight_bits,
                             config.acc_bits, max_kernel, max_stride)

    def dsp_per_mac(self, config: HardwareConfig):
        """DSPs of one MAC of the array: two rows of one MAC less their lanes, halved (0.5
        where the two rows share a slice)."""
        pair = int(self.dsp(config, 2, 1) - self.dsp(config, 2, 0))
        return pair // 2 if pair % 2 == 0 else pair / 2

    def dsp_cause(self, config: HardwareConfig) -> str:
        lanes = int(self.dsp(config, config.tm, 0))
        macs = int(self.dsp(config, config.tm, config.tn)) - lanes
        kind = "" if config.post_multipliers else "shift-only "
        return (f"Tm x Tn = {config.tm} x {config.tn} MACs on {macs} DSPs and {config.tm} "
                f"{kind}post-processing lanes on {lanes}")


@dataclass(frozen=True)
class MacArrayResources:
    """Zhang et al.'s model: `per_mac` DSPs per MAC (`plan.dsp.dsp_per_mac`), nothing else."""

    per_mac: float
    name: str = "mac-array"

    def dsp(self, config: HardwareConfig, tm, tn):
        return np.ceil(np.asarray(tm) * np.asarray(tn) * self.per_mac).astype(np.int64)

    def bram18(self, config: HardwareConfig, tm, tn, tr, tc, max_kernel, max_stride):
        """Ping-pong buffers in banks. Input: Tn banks of act_bits words,
        ((Tr-1)S+K) x ((Tc-1)S+K) deep; weights: Tm banks of Tn*weight_bits-bit words, K*K
        deep; output: Tm banks of acc_bits words, Tr*Tc deep; each buffer twice."""
        tm, tn, tr, tc = (np.asarray(v, dtype=np.int64) for v in (tm, tn, tr, tc))
        in_depth = (((tr - 1) * max_stride + max_kernel)
                    * ((tc - 1) * max_stride + max_kernel))
        return (bram18_count_array(config.act_bits, in_depth, 2 * tn)
                + bram18_count_array(tn * config.weight_bits, max_kernel * max_kernel, 2 * tm)
                + bram18_count_array(config.acc_bits, tr * tc, 2 * tm))

    def dsp_per_mac(self, config: HardwareConfig):
        return self.per_mac

    def dsp_cause(self, config: HardwareConfig) -> str:
        return f"Tm x Tn = {config.tm} x {config.tn} MACs at {self.per_mac:g} DSP each"

