"""Data and helpers shared by several test modules (no test module imports another)."""
