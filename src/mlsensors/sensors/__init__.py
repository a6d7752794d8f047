"""The sensor's stages after detection: tracking, identification, the ID gallery."""
