"""newsletter: a weekly email newsletter pipeline for an intelligence brief."""

__version__ = "0.1.0"
__all__ = ["__version__"]
