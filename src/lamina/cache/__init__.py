"""lamina.cache"""
