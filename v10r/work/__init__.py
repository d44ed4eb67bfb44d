"""Turning tasks into written vectors: the processing core and the queue worker loop."""
