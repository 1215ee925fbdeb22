"""structure layer."""
