"""Servers the benchmarks compare queuecast with."""
