"""fpgacnn.quant"""
