"""fpgacnn.zoo"""
