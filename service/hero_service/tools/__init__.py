"""Offline tools: the `hero` command line, offline scoring, reports, synthetic data."""
