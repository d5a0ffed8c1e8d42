"""lamina.registry"""
