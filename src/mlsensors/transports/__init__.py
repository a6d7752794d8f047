"""The edges: the ways results leave the sensor and commands reach it (buses, network, GPIO).

Each transport takes a `mlsensors.hub.Hub`, reads snapshots from it and sends commands
back only as register writes. None of them ever sees a picture: the hub holds the results
record and the sensor's status, nothing else. Importing this package imports no hardware
or network library; each transport module imports its own, only when it is used.
"""
