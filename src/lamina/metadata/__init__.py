"""lamina.metadata"""
