"""lamina.analyze"""
