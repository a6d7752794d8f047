"""Transports at the edge: the ways the sensor's results leave the machine's core.

Each transport takes a `mlsensors.hub.Hub`, reads snapshots from it and sends commands
back only as register writes. None of them ever sees a picture: the hub holds the
results record and the sensor's status, nothing else. Importing this package imports
no network library; each transport module imports its own.
"""
