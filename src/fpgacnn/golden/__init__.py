"""The golden model: the integer arithmetic the hardware must reproduce, bit for bit."""
