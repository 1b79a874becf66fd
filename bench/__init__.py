"""Benchmarks of the REP reference server and conformance kit against same-run baselines.

Absolute numbers drift on shared machines, so every scenario measures a baseline written
for the benchmark (raw aiohttp, picows) in the same run, alternating windows with the
reference server, and reports the median of the paired ratios. ``python -m bench`` runs
them; see ``bench/README.md``.
"""
