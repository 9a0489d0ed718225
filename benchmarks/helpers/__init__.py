"""Helpers the benchmarks run in another virtualenv (not benchmarks themselves: `make bench` skips this folder)."""
