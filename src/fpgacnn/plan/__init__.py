"""fpgacnn.plan"""
