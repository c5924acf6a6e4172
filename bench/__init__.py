"""Benchmarks: bounded in time, loopback only; each runs with one documented command."""
