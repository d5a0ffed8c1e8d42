"""lamina.oci"""
