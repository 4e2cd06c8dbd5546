"""The golden model: the integer arithmetic the hardware must reproduce, bit for bit.

    >>> from fpgacnn import golden
    >>> y = golden.run(qmodel, golden.quantize_input(qmodel, x))   # {output name: int array}
    >>> real = golden.dequantize(y["fc"], qmodel.format_of("fc"))
"""

from fpgacnn.golden.executor import dequantize, quantize_input, quantize_tensor, run

__all__ = ["run", "quantize_input", "quantize_tensor", "dequantize"]
