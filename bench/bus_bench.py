"""Virtual I2C bus throughput and latency on loopback while the sensor publishes.

    PYTHONPATH=src python bench/bus_bench.py [--seconds 3] [--clients 1 4] [--rate 15]
                                             [--source demo]

A publisher thread puts a changing PersonResult into the hub at --rate Hz (the
SEN21231 managed about 7/s) -- or, with --source, the real sensor loop (LiteRT
detector) runs on that source in the server's process, as `mlsensors serve` does --
while each client process reads and fully decodes the
39-byte record (checksum verified) through PersonSensorClient, first flat out
(throughput), then paced to 1,000 reads/s in total (latency at the target load).
Prints reads per second and transaction latency percentiles per transport and client
count, against the targets of issue 3 (>= 1,000 reads/s, p99 <= 1 ms), beside a
"floor": a bare asyncio server and socket client doing no work, measured in the same
run, so that the machine's own scheduling noise can be told apart from the bus's.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import socket
import statistics
import tempfile
import threading
import time
from pathlib import Path

from mlsensors.hub import Hub
from mlsensors.transports.client import PersonSensorClient
from mlsensors.transports.virtual_bus import VirtualBusServer
from mlsensors.types import PersonFace, PersonResult
from mlsensors.wire.device import PersonSensorDevice

TARGET_READS = 1000.0
TARGET_P99_MS = 1.0


class _NullControl:
    def __getattr__(self, name):
        return lambda *args: None


def _publisher(hub: Hub, rate: float, stop: threading.Event) -> None:
    i = 0
    while not stop.wait(1.0 / rate):
        i += 1
        faces = tuple(PersonFace((10 + i % 40, 20, 120, 150), 90, bool(i & 1))
                      for _ in range(i % 5))
        hub.publish(PersonResult(time.time(), faces, i))


_FLOOR_REPLY = b"\x00\x00\x27" + bytes(39)


class _FloorProtocol(asyncio.Protocol):
    """The least a server on this machine can do: a fixed reply per 4-byte request."""

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP,
                                                      socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.transport.write(_FLOOR_REPLY * (len(data) // 4))


def _start_floor() -> tuple[str, asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    threading.Thread(target=loop.run_forever, daemon=True).start()
    server = asyncio.run_coroutine_threadsafe(
        loop.create_server(_FloorProtocol, "127.0.0.1", 0), loop).result()
    return f"floor:127.0.0.1:{server.sockets[0].getsockname()[1]}", loop


class _RawClient:
    """A bare socket client for the floor: send a read, receive 42 bytes, no decoding."""

    def __init__(self, address: str) -> None:
        host, port = address.split(":")[1:]
        self.sock = socket.create_connection((host, int(port)))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def read_results(self) -> None:
        self.sock.sendall(b"\x62R\x00\x27")
        got = 0
        while got < len(_FLOOR_REPLY):
            got += len(self.sock.recv(len(_FLOOR_REPLY) - got))

    def __enter__(self) -> _RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def _client(address: str, seconds: float, interval: float, start, results) -> None:
    """One client process (clients are other programs, with their own interpreter).

    interval 0 reads flat out (throughput); otherwise one read every `interval` s, so
    latency is measured at a given load rather than in a queue of our own making.
    """
    out = []
    opener = _RawClient if address.startswith("floor:") else PersonSensorClient
    with opener(address) as sensor:
        sensor.read_results()  # connect and warm up
        start.wait()
        end = time.perf_counter() + seconds
        due = now = time.perf_counter()
        while now < end:
            sensor.read_results()
            after = time.perf_counter()
            out.append(after - now)
            if interval:
                due += interval
                pause = due - after
                if pause > 0:
                    time.sleep(pause)
                now = time.perf_counter()
            else:
                now = after
    results.put(out)


def run(address: str, clients: int, seconds: float,
        total_rate: float = 0.0) -> tuple[float, float, float]:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(clients + 1)
    results = ctx.Queue()
    interval = clients / total_rate if total_rate else 0.0
    procs = [ctx.Process(target=_client, args=(address, seconds, interval, start, results))
             for _ in range(clients)]
    for p in procs:
        p.start()
    start.wait()
    t0 = time.perf_counter()
    latencies = [results.get() for _ in procs]
    elapsed = time.perf_counter() - t0
    for p in procs:
        p.join()
    flat = sorted(x for lat in latencies for x in lat)
    p50 = statistics.median(flat) * 1e3
    p99 = flat[min(len(flat) - 1, int(0.99 * len(flat)))] * 1e3
    return len(flat) / elapsed, p50, p99


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--rate", type=float, default=15.0, help="results published per s")
    parser.add_argument("--source", help="run the real sensor on this source (e.g. demo)")
    parser.add_argument("--threads", type=int, default=None,
                        help="detector threads with --source (default: the detector's)")
    args = parser.parse_args()

    hub = Hub()
    stop = threading.Event()
    if args.source:
        from mlsensors.person.sensor import PersonSensor, SensorOptions
        from mlsensors.sources import open_source

        sensor = PersonSensor(open_source(args.source, loop=True, realtime=True),
                              SensorOptions(max_fps=args.rate, threads=args.threads))
        PersonSensorDevice(sensor).attach(hub)  # type: ignore[arg-type]
        pub = threading.Thread(target=sensor.run, args=(hub, stop), daemon=True)
    else:
        PersonSensorDevice(_NullControl()).attach(hub)
        pub = threading.Thread(target=_publisher, args=(hub, args.rate, stop), daemon=True)
    pub.start()
    time.sleep(1.0 if args.source else 0.0)  # let the detector load
    with tempfile.TemporaryDirectory() as tmp:
        servers = [VirtualBusServer(hub, "tcp:127.0.0.1:0"),
                   VirtualBusServer(hub, f"unix:{Path(tmp) / 'bus.sock'}")]
        for s in servers:
            s.start()
        try:
            before = hub.snapshot().sequence
            print(f"{'transport':9} {'clients':>7} {'load':>9} {'reads/s':>9} {'x target':>8} "
                  f"{'p50 ms':>7} {'p99 ms':>7} {'p99/target':>10}")
            floor, floor_loop = _start_floor()
            for load in (0.0, TARGET_READS):
                rate, p50, p99 = run(floor, 1, args.seconds, load)
                label = f"{load:,.0f}/s" if load else "flat out"
                print(f"{'floor':9} {1:>7} {label:>9} {rate:>9,.0f} "
                      f"{rate / TARGET_READS:>8.1f} {p50:>7.3f} {p99:>7.3f} "
                      f"{p99 / TARGET_P99_MS:>10.2f}")
            floor_loop.call_soon_threadsafe(floor_loop.stop)
            for server in servers:
                for n in args.clients:
                    for load in (0.0, TARGET_READS):
                        rate, p50, p99 = run(str(server.address), n, args.seconds, load)
                        label = f"{load:,.0f}/s" if load else "flat out"
                        print(f"{server.address.kind:9} {n:>7} {label:>9} {rate:>9,.0f} "
                              f"{rate / TARGET_READS:>8.1f} {p50:>7.3f} {p99:>7.3f} "
                              f"{p99 / TARGET_P99_MS:>10.2f}")
            published = hub.snapshot().sequence - before
        finally:
            for s in servers:
                s.stop()
            stop.set()
            pub.join(10)
    what = f"sensor on {args.source}" if args.source else "synthetic"
    print("floor: a bare asyncio TCP server sending a fixed 42-byte reply, read by a bare "
          "socket client:\nwhat this machine gives any server right now.")
    print(f"results published meanwhile: {published} "
          f"(~{args.rate:g}/s requested, {what}); targets: >= {TARGET_READS:,.0f} reads/s, "
          f"p99 <= {TARGET_P99_MS} ms")


if __name__ == "__main__":
    main()
