"""Thin client and wire schema for the HERO reward service (imports neither torch nor
the server)."""

from hero_client import schema

__all__ = ["schema"]
__version__ = "0.1.0"
