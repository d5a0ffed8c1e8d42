"""lamina.reference"""
