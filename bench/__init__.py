"""Benchmarks (``make bench``): development tools, never installed into an image."""
