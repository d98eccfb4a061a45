"""Restore policy and power-on backends."""
