"""lamina: a Docker-compatible container engine written in Python.

The library is usable without the CLI: start from :class:`lamina.engine.Engine`.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
