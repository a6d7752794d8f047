"""`mlsensors serve`: the sensor as a long-running service behind its transports.

    sealed sensing process ──(guard: checked records, ≤ max rate)──▶ Hub ──▶ transports
                           ◀──(register writes, checked by the device model)── transports

The sensing loop runs in the sealed child (`privacy.sealed`); this process holds the
Hub, the Person Sensor's device model (register rules, presence pin) and the transports
the command line asks for: virtual I2C bus, a Raspberry Pi's I2C target, the presence
GPIO, MQTT for Home Assistant, the local status page. It never sees a picture.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time

from mlsensors.cli.id import add_gallery_arguments, ensure_id_models
from mlsensors.cli.person import add_sensor_arguments, ensure_detector, sensor_options
from mlsensors.errors import InputError

EXIT_SENSOR_FAILED = 3


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve", help="run the sensor as a service: I2C (virtual or Pi), MQTT, status page")
    add_sensor_arguments(p)
    p.add_argument("--loop", action="store_true",
                   help="start a finite source (image, folder, video) again at its end")
    p.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                   help="stop after this long (default: until interrupted)")
    ids = p.add_argument_group("face IDs")
    ids.add_argument("--id", action="store_true",
                     help="start with identification on (ENABLE_ID=1); without it, "
                          "ENABLE_ID=1 is refused")
    add_gallery_arguments(ids)
    ids.add_argument("--no-persist", action="store_true",
                     help="start with PERSIST_IDS=0: learnt IDs live in memory only")
    from mlsensors.cli import serve_voice
    from mlsensors.privacy import sealed
    from mlsensors.transports import gpio, mqtt, pi_bsc, virtual_bus
    from mlsensors.transports import http as status_page

    serve_voice.add_arguments(p)
    sealed.add_arguments(p)
    for transport in (virtual_bus, pi_bsc, gpio, mqtt, status_page):  # at least one
        transport.add_arguments(p)
    gpio.add_command_pin_arguments(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from mlsensors.cli import serve_voice
    from mlsensors.hub import Hub
    from mlsensors.privacy import sealed
    from mlsensors.transports import descriptors, gpio, mqtt, mqtt_voice, pi_bsc, virtual_bus
    from mlsensors.transports import http as status_page
    from mlsensors.wire.device import DeviceState, PersonSensorDevice, RegisterLink

    if args.duration is not None and args.duration <= 0:
        raise InputError(f"--duration {args.duration:g}: give a positive number of seconds")
    logging.basicConfig(level=logging.INFO, format="mlsensors: %(message)s",
                        stream=sys.stderr)
    person = not args.no_person
    if not person and (args.source is not None or args.id):
        raise InputError("--no-person runs no camera: drop --source and --id")
    hub = Hub()
    if not person:  # the status page says so rather than "starting" for ever
        from mlsensors.hub import SensorStatus

        hub.set_status(SensorStatus("stopped", detail="no camera (--no-person)"))
    voice = serve_voice.build(args, hub if person else None, insecure=args.insecure)
    voice_hub = voice.hub if voice is not None else None
    transports = [t for t in (virtual_bus.from_args(args, hub if person else None, voice_hub),
                              pi_bsc.from_args(args, hub) if person else None,
                              mqtt.from_args(args, hub) if person else None,
                              mqtt_voice.from_args(args, voice_hub,
                                                   wake_word=voice is not None
                                                   and voice.wake_word is not None),
                              status_page.from_args(args, hub, voice_hub))
                  if t is not None]
    sensors = []
    device = None
    if person:
        sensor = sealed.from_args(
            args, hub, options=sensor_options(args), loop=args.loop, identify=args.id,
            gallery=str(args.gallery) if args.gallery else None,
            key_file=str(args.key) if args.key else None, persist=not args.no_persist)
        sensors.append(sensor)
        if args.source is not None:
            # The sealed child checks again and decodes; here only what needs no content.
            from mlsensors.source_names import check_source

            check_source(args.source)
        device = PersonSensorDevice(
            RegisterLink(sensor.guard.send, ids=args.id),
            DeviceState(enable_id=args.id, persist_ids=not args.no_persist))
        pin = gpio.from_args(args, device)
        if pin is not None:
            transports.append(pin)
    if voice is not None:
        sensors.append(voice.sensor)
    pins = gpio.command_pins_from_args(args, voice_hub)  # refused without --voice
    if pins is not None:
        transports.append(pins)
    if not transports:
        raise InputError("nothing to serve to: give at least one of --bus, --i2c-target, "
                         "--presence-pin, --command-pins, --mqtt, --http (see `mlsensors "
                         "serve --help`)")
    if person:
        ensure_detector(args.model)
    if args.id:
        ensure_id_models()
    # Peers never take the descriptors the guard needs to restart the sensing process.
    descriptors.raise_soft_limit()
    accepting = [t for t in transports if hasattr(t, "cap_peers")]
    share = descriptors.peer_share(len(accepting))
    for transport in accepting:
        transport.cap_peers(share)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    started = []
    for sensor in sensors:
        sensor.start()
    # after start: the device, not the guard, takes writes
    detach = device.attach(hub) if device is not None else (lambda: None)
    try:
        for transport in transports:
            where = transport.start()
            started.append(transport)
            if where is not None and where is not transport:
                logging.info("%s on %s", type(transport).__name__, where)
        deadline = None if args.duration is None else time.monotonic() + args.duration
        while not stop.wait(0.2):
            if deadline is not None and time.monotonic() >= deadline:
                break
            if not all(sensor.running for sensor in sensors):
                break
    finally:
        for transport in reversed(started):
            transport.stop()
        detach()
        for sensor in sensors:
            sensor.stop()
        if voice is not None:
            voice.gate.close()
    if voice is not None:
        snap = voice.hub.snapshot()
        logging.info("voice: %d event(s) heard, %d published, %d held back by the %s "
                     "gate", snap.heard, snap.published, snap.gated, voice.gate.mode)
    hubs = ([hub] if person else []) + ([voice.hub] if voice is not None else [])
    for status in (h.snapshot().status for h in hubs):
        if status.state == "fault":
            print(f"mlsensors: error: the sensor stopped: {status.detail}", file=sys.stderr)
            return EXIT_SENSOR_FAILED
    return 0
