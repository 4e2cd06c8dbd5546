"""fpgacnn.export"""
