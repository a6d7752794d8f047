"""The edges: ways results leave the sensor and commands reach it (buses, network, GPIO).

Hardware and network libraries are imported inside the module that needs them, only when
that transport is used, so the core never depends on them.
"""
