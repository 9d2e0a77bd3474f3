"""A declaration engine for social security: receive, check, store once, serve."""

__version__ = "0.1.0"
