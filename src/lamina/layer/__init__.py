"""lamina.layer"""
