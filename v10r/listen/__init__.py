"""Turning database changes into tasks: LISTEN, burst dedup, and the catch-up scan."""
