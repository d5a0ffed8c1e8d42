"""lamina.build"""
