"""Servers written for the benchmark only: the ceilings the reference server is compared with.

Each does the least a REP-shaped server must (parse each JSON message, answer with an
envelope-shaped reply) and nothing else: no validation, no authentication, no rooms.
``python -m bench.baselines {echo,broadcast,sse,picows-echo} --port P`` runs one.
"""
