"""lamina.content"""
