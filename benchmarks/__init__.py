"""The benchmarks: one per file, run by `make bench b=NAME` (tables printed, figures in .data/bench/NAME.json)."""
