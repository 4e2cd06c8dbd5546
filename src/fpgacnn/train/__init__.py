"""fpgacnn.train"""
