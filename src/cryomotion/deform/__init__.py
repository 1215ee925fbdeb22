"""deform layer."""
