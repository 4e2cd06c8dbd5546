"""fpgacnn.hw"""
