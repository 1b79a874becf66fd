"""The REP 1.0 reference server: a sans-I/O protocol core behind thin aiohttp transports.

Layers (imports only point downwards)::

    cli, testing          start and stop a server
    transport/            aiohttp: sockets and HTTP <-> core events and effects
    core/                 the protocol: decoded input in, effects out; no I/O
    broker/               shared state and fan-out (in memory; Redis for clusters)
    config, auth          plain data and token checks
"""
