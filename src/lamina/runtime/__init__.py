"""lamina.runtime"""
