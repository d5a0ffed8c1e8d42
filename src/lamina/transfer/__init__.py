"""lamina.transfer"""
