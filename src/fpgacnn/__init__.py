"""fpgacnn: from a trained CNN to a bit-exact FPGA accelerator."""

__version__ = "0.1.0"
