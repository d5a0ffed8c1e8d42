"""lamina.images"""
