"""lamina.build.dockerfile"""
