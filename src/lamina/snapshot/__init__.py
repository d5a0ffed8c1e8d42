"""lamina.snapshot"""
