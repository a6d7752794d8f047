"""The Person Sensor (SEN21231) wire interface: its results record and register map.

Pure byte formats and state, no I/O: transports (virtual bus, real I2C) live at the edges.
"""
