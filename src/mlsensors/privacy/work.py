"""What the sealed child runs: the real Person Sensor loop, publishing into the child's Hub.

Runs after `sandbox.seal`, so the source is opened and the detector's model bytes are
read (and checked against the manifest by `ModelStore.load_bytes`) inside the sandbox,
from the model directory the guard allowed and nowhere else.
"""

from __future__ import annotations

import json
import os
import sys
import threading

from mlsensors.hub import Hub, RegisterWrite

REG_MODE = 0x01
REG_SINGLE_SHOT = 0x03


def person_sensor(hub: Hub, stop: threading.Event, config) -> None:
    """Open the source and the detector, then run PersonSensor into `hub` until `stop`."""
    if config.model_dir:
        os.environ["MLSENSORS_MODEL_DIR"] = config.model_dir
    from mlsensors.models import ModelStore
    from mlsensors.sensors.person import PersonSensor, SensorOptions
    from mlsensors.sources import open_source
    from mlsensors.vision.detector import FaceDetector

    options = SensorOptions(**json.loads(config.sensor_options))
    detector = FaceDetector(options.model, threads=options.threads,
                            score_threshold=options.score_threshold,
                            store=ModelStore(config.model_dir or None),
                            tiling=options.tiling)
    source = open_source(config.source, loop=config.loop, realtime=config.realtime)
    with PersonSensor(source, options, detector=detector) as sensor:
        hub.set_controller(lambda write: apply_register(sensor, write))
        sensor.run(hub, stop)


def apply_register(sensor, write: RegisterWrite) -> None:
    """The register writes the sensor loop implements; the guard has checked the values."""
    if write.register == REG_MODE:
        sensor.set_continuous(write.value == 1)
    elif write.register == REG_SINGLE_SHOT:
        sensor.single_shot()
    else:
        print(f"register 0x{write.register:02x} is not implemented by the sensor yet",
              file=sys.stderr, flush=True)
