"""What the sealed child runs: the real Person Sensor loop, publishing into the child's Hub.

Runs after `sandbox.seal`, so the source is opened and the detector's model bytes are
read (and checked against the manifest by `ModelStore.load_bytes`) inside the sandbox,
from the model directory the guard allowed and nowhere else. Face identification, when
on, embeds in a second process that the child started before sealing itself (a sealed
process may not start programs) and that sealed itself the same way.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from pathlib import Path

from mlsensors.hub import Hub

EMBED_MEMORY_CAP = 384 << 20
"""RLIMIT_AS of the sealed embedding process: measured peak address space 156 MiB
(dlib's two models, one face crop), with room for the largest crops."""


def launch_embedder(config) -> subprocess.Popen:
    """Before sealing: start the embedding process, which seals itself before it loads
    anything. Only a Popen here: sealing needs this process to stay single-threaded."""
    from mlsensors.sensors.embed_worker import ProcessWorker

    cmd = ProcessWorker.command(config.model_dir or None, seal_memory=EMBED_MEMORY_CAP)
    return ProcessWorker.launch(cmd)


def person_sensor(hub: Hub, stop: threading.Event, config,
                  embedder: subprocess.Popen | None = None) -> None:
    """Open the source and the detector (and the identity stage when `embedder` is
    given), then run PersonSensor into `hub` until `stop`."""
    if config.model_dir:
        os.environ["MLSENSORS_MODEL_DIR"] = config.model_dir
    from mlsensors.models import ModelStore
    from mlsensors.sensors.person import PersonSensor, SensorOptions, sensor_detector
    from mlsensors.sources import open_source
    from mlsensors.wire.device import apply_write

    options = SensorOptions(**json.loads(config.sensor_options))
    detector = sensor_detector(options, ModelStore(config.model_dir or None))
    identity = None
    if embedder is not None:
        from mlsensors.sensors.embed_worker import ProcessWorker
        from mlsensors.sensors.id_stage import IdentityStage, IdOptions

        identity = IdentityStage(
            IdOptions(gallery=Path(config.gallery) if config.gallery else None,
                      key_file=Path(config.key_file) if config.key_file else None,
                      persist=config.persist),
            worker=ProcessWorker(process=embedder))
    source = open_source(config.source, loop=config.loop, realtime=config.realtime)
    with PersonSensor(source, options, detector=detector, identity=identity) as sensor:
        hub.set_controller(lambda write: apply_write(sensor, write))
        sensor.run(hub, stop)
