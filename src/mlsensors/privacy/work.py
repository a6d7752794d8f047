"""What the sealed child runs: the real Person Sensor loop, publishing into the child's Hub.

Runs after `sandbox.seal`, so the source is opened and the detector's model bytes are
read (and checked against the manifest by `ModelStore.load_bytes`) inside the sandbox,
from the model directory the guard allowed and nowhere else. Face identification, when
on, embeds in a second process that the child started before sealing itself (a sealed
process may not start programs) and that sealed itself the same way. The gallery comes
from the guard and calibrations go back to it (`sensors.gallery_link`): no file here.
If the embedding process ends, this process ends too (status EMBEDDER), so that the
guard restarts both; until then no ID is reported.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading

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
                  embedder: subprocess.Popen | None = None, link=None) -> None:
    """Open the source and the detector (and the identity stage when `embedder` is
    given, kept through `link`, the child's `GuardLink`), then run PersonSensor into
    `hub` until `stop`."""
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
        identity = _identity_stage(embedder, link)
    source = open_source(config.source, loop=config.loop, realtime=config.realtime)
    with PersonSensor(source, options, detector=detector, identity=identity) as sensor:
        hub.set_controller(lambda write: apply_write(sensor, write))
        sensor.run(hub, stop)


def _identity_stage(embedder: subprocess.Popen, link):
    """The identity stage of the sealed process: embeddings in `embedder`, IDs from and
    to the guard through `link`; the end of `embedder` ends this process."""
    from mlsensors.privacy.channel import Reason
    from mlsensors.sensors.embed_worker import ProcessWorker
    from mlsensors.sensors.gallery_link import GuardStore, decode_load
    from mlsensors.sensors.id_stage import IdentityStage, IdOptions

    def gone(error: str) -> None:
        link.fail(Reason.EMBEDDER, f"face IDs stop: {error}")

    identity = IdentityStage(IdOptions(), worker=ProcessWorker(process=embedder,
                                                                on_failure=gone),
                             id_store=GuardStore(link))
    link.receive(lambda block: identity.load(*decode_load(block)))
    return identity
