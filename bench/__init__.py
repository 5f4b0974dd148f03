"""Benchmarks for Kreis: SFU forwarding throughput and latency, browser join time.

Run them as modules (`python -m bench.sfu`, `python -m bench.join`) inside a
loopback-only network namespace; they never run in the test suite. Figures are
printed, and docs/performance.md records them with the commands that made them.
"""
