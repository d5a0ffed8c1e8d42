"""lamina.engine"""
