"""HERO reward service: rule verifier + reward model fused into the HERO hybrid reward."""

__version__ = "0.1.0"
