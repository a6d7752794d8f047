"""What the sealed child runs: the real Person Sensor loop, publishing into the child's Hub.

Runs sealed (`launch`), so the source is opened and the detector's model bytes are
read (and checked against the manifest by `ModelStore.load_bytes`) inside the sandbox,
from the model directory the guard allowed and nowhere else. Face identification, when
on, embeds in a second process that the launcher started beside this one (a sealed
process may not start programs), sealed on its own with the "embedder" role. The gallery comes
from the guard and calibrations go back to it (`person.gallery_link`): no file here.
If the embedding process ends, this process ends too (status EMBEDDER), so that the
guard restarts both; until then no ID is reported.
"""

from __future__ import annotations

import json
import os
import threading

from mlsensors.hub import Hub


def person_sensor(hub: Hub, stop: threading.Event, config,
                  embedder=None, link=None) -> None:
    """Open the source and the detector (and the identity stage when `embedder` is
    given, kept through `link`, the child's `GuardLink`), then run PersonSensor into
    `hub` until `stop`."""
    if config.model_dir:
        os.environ["MLSENSORS_MODEL_DIR"] = config.model_dir
    from mlsensors.models import ModelStore
    from mlsensors.person.sensor import PersonSensor, SensorOptions, sensor_detector
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


def _identity_stage(embedder, link):
    """The identity stage of the sealed process: embeddings in `embedder`, IDs from and
    to the guard through `link`; the end of `embedder` ends this process."""
    from mlsensors.person.embed_worker import ProcessWorker
    from mlsensors.person.gallery_link import GuardStore, decode_load
    from mlsensors.person.id_stage import IdentityStage, IdOptions
    from mlsensors.privacy.channel import Reason

    def gone(error: str) -> None:
        link.fail(Reason.EMBEDDER, f"face IDs stop: {error}")

    identity = IdentityStage(IdOptions(), worker=ProcessWorker(process=embedder,
                                                                on_failure=gone),
                             id_store=GuardStore(link))
    link.receive(lambda block: identity.load(*decode_load(block)))
    return identity
