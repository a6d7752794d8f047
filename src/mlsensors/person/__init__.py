"""The person sensor: its sensor loop, tracking, far-field scan, identification and
gallery, and its kind for the sealed spine (`kind.py`, `child.py`). Detection models
live in `vision/`, the SEN21231 record and registers in `wire/`."""
