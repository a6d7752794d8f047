"""Stand-ins for the sensing loop, run inside the real sealed child by the privacy tests.

Each has the work signature `(hub, stop, config)`. Some are well-behaved, some act like
a compromised child writing straight to its record pipe.
"""

from __future__ import annotations

import os
import time

from mlsensors.hub import SensorStatus
from mlsensors.privacy.channel import encode_result
from mlsensors.types import PersonFace, PersonResult

FACE = PersonFace((10, 20, 110, 140), 90, True)


def steady(hub, stop, config):
    """One face per frame at ~50 frames/s until told to stop."""
    i = 0
    while not stop.is_set():
        i += 1
        hub.publish(PersonResult(time.time(), (FACE,), i), SensorStatus("running"))
        time.sleep(0.02)


def flood(hub, stop, config):
    """Valid records as fast as the pipe takes them."""
    frame = encode_result(PersonResult(0.0, (FACE,)))
    block = frame * 100
    while not stop.is_set():
        os.write(config.record_fd, block)


def garbage(hub, stop, config):
    """Random bytes, odd lengths, between a few valid records."""
    valid = encode_result(PersonResult(0.0, (FACE,)))
    while not stop.is_set():
        os.write(config.record_fd, os.urandom(997))
        os.write(config.record_fd, valid)
        time.sleep(0.001)


def hostile_fields(hub, stop, config):
    """Well-framed records whose fields lie: bad CRC, out-of-range values, bad order."""
    from mlsensors.wire.record import crc16_ccitt_false

    good = bytearray(encode_result(PersonResult(0.0, (FACE,))))
    bad_crc = bytes(good[:-1]) + bytes([good[-1] ^ 0xFF])
    body = bytearray(good[1:-2])
    body[5] = 200  # confidence out of range
    bad_conf = b"R" + bytes(body) + crc16_ccitt_false(bytes(body)).to_bytes(2, "little")
    while not stop.is_set():
        os.write(config.record_fd, bad_crc + bad_conf)
        time.sleep(0.005)


def crash_after_faces(hub, stop, config):
    """Report a face for a moment, then die: the guard must not keep showing the face."""
    for i in range(10):
        hub.publish(PersonResult(time.time(), (FACE,), i), SensorStatus("running"))
        time.sleep(0.02)
    os._exit(9)


def hang_after_faces(hub, stop, config):
    """Report a face for a moment, then go silent forever (a stuck camera read)."""
    for i in range(10):
        hub.publish(PersonResult(time.time(), (FACE,), i), SensorStatus("running"))
        time.sleep(0.02)
    while True:
        time.sleep(1)


def noisy_logs(hub, stop, config):
    """Print pixel-like dumps and many lines; the guard's log filter must stop them."""
    import numpy as np

    print(repr(np.arange(64, dtype=np.uint8).reshape(8, 8)), flush=True)
    print(" ".join(str(v) for v in range(200)), flush=True)
    for i in range(100):
        print(f"line {i}", flush=True)
    steady(hub, stop, config)


def echo_commands(hub, stop, config):
    """Report the last register write as a face's confidence (register × 10 + value)."""
    last = [50]
    hub.set_controller(lambda write: last.__setitem__(0, write.register * 10 + write.value))
    i = 0
    while not stop.is_set():
        i += 1
        face = PersonFace((10, 20, 110, 140), min(100, last[0]), True)
        hub.publish(PersonResult(time.time(), (face,), i), SensorStatus("running"))
        time.sleep(0.02)


def deaf(hub, stop, config):
    """Stops reading its command pipe but keeps it open, so the pipe fills up."""
    keep = os.dup(config.command_fd)  # the guard's pipe stays open, unread
    idle_r, _idle_w = os.pipe()
    os.dup2(idle_r, config.command_fd)  # the command thread's next read waits here
    steady(hub, stop, config)
    os.close(keep)


def forge_calibrations(hub, stop, config, link=None):
    """A compromised sensing process on the store pipe: records nobody asked for, forged
    ones for the requested ID, then one honest record and a second one. Reports, as its
    face's confidence, how many load blocks the guard sent back."""
    import numpy as np

    from mlsensors.person.gallery_link import encode_calibration

    rng = np.random.default_rng(1)

    def vec(length=1.4):
        v = rng.normal(size=128)
        return (length * v / np.linalg.norm(v)).astype(np.float32)

    loads = []
    link.receive(loads.append)
    asked = []
    hub.set_controller(lambda write: asked.append(write))
    os.write(config.store_fd, encode_calibration(0, [vec()]))  # unasked
    answered = 0
    i = 0
    while not stop.is_set():
        calibrations = [w.value for w in asked if w.register == 0x04]
        if len(calibrations) > answered:
            wanted = calibrations[answered]
            answered += 1
            nan = vec()
            nan[3] = np.nan
            huge = vec()
            huge *= 10
            for forged in (encode_calibration((wanted + 1) % 8, [vec()]),
                           encode_calibration(wanted, [nan]),
                           encode_calibration(wanted, [huge]),
                           encode_calibration(wanted, [vec()])[:-1] + b"\x3c"):
                os.write(config.store_fd, forged)
            honest = encode_calibration(wanted, [vec(), vec()])
            os.write(config.store_fd, honest)
            os.write(config.store_fd, honest)  # a second answer to one request
        i += 1
        face = PersonFace((10, 20, 110, 140), min(100, len(loads)), True)
        hub.publish(PersonResult(time.time(), (face,), i), SensorStatus("running"))
        time.sleep(0.02)


def probe_gallery_folder(hub, stop, config, embedder=None, link=None):
    """Try to write beside the gallery (the folder is given as the source) and to read
    the key file (its path comes in the sensor options); one "probe" line each."""
    import errno
    import json
    import sys

    key = json.loads(config.sensor_options)["key"]

    def attempt(name, action):
        try:
            action()
            print(f"probe {name}: ALLOWED", file=sys.stderr, flush=True)
        except OSError as e:
            print(f"probe {name}: blocked ({errno.errorcode.get(e.errno, e.errno)})",
                  file=sys.stderr, flush=True)

    def write_beside():
        with open(os.path.join(config.source, "planted.bin"), "wb") as f:
            f.write(b"x" * 4096)

    def read_key():
        with open(key, "rb") as f:
            f.read()

    attempt("write gallery folder", write_beside)
    attempt("read key", read_key)
    steady(hub, stop, config)


def escape(hub, stop, config):
    """A compromised sensing process trying the ways out of issue 10, once sealed.

    Targets come in the sensor options: `unix` (a socket path the test listens on),
    `file` (a file outside to chmod, utime and setxattr). Each attempt prints one
    "probe NAME: ..." line; the test judges by what it sees from outside.
    """
    import ctypes
    import errno
    import json
    import socket
    import sys

    targets = json.loads(config.sensor_options)
    libc = ctypes.CDLL(None, use_errno=True)

    def attempt(name, action):
        try:
            action()
            print(f"probe {name}: ALLOWED", file=sys.stderr, flush=True)
        except OSError as e:
            print(f"probe {name}: blocked ({errno.errorcode.get(e.errno, e.errno)})",
                  file=sys.stderr, flush=True)

    def check(result):
        if result != 0:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))

    def unix():
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(2)
            s.connect(targets["unix"])
            s.sendall(b"leaked frame bytes")

    def setxattr():
        check(libc.setxattr(targets["file"].encode(), b"user.leak", b"x" * 64,
                            ctypes.c_size_t(64), 0))

    def argv():
        # glibc's program_invocation_name points into the original argv strings
        start = ctypes.c_void_p.in_dll(libc, "program_invocation_name").value
        payload = b"LEAK-" + b"A" * 20 + b"-LEAK"
        ctypes.memmove(start, payload, len(payload))

    def comm_file():
        with open("/proc/self/comm", "w") as f:
            f.write("leak-file")

    attempt("unix connect", unix)
    attempt("chmod", lambda: os.chmod(targets["file"], 0o777))
    attempt("utime", lambda: os.utime(targets["file"], ns=(123456789, 987654321)))
    attempt("setxattr", setxattr)
    attempt("prctl PR_SET_NAME", lambda: check(libc.prctl(15, b"leak-prctl", 0, 0, 0)))
    attempt("write /proc/self/comm", comm_file)
    attempt("argv memory", argv)
    print("probe done", file=sys.stderr, flush=True)
    steady(hub, stop, config)


def voice_forger(hub, stop, config, channel):
    """A compromised voice process (2 commands enrolled, no wake word): a burst of ten
    valid events at once, then three lies (a command not enrolled, a wake word nobody
    listens for, a counter that jumps), then the next valid event."""
    from mlsensors.privacy.channel import ChildState
    from mlsensors.voice.kind import TAG_VOICE
    from mlsensors.voice.record import EventKind, VoiceEvent, pack

    def frame(kind, command, counter, when):
        return bytes([TAG_VOICE]) + pack(VoiceEvent(kind, command, 90, counter, when))

    def beat(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end and not stop.is_set():
            channel.status(ChildState.RUNNING)
            time.sleep(0.3)

    channel.status(ChildState.RUNNING)
    os.write(config.record_fd, b"".join(frame(EventKind.COMMAND, 1, c, 10 * c)
                                        for c in range(1, 11)))
    beat(3.0)
    for lie in (frame(EventKind.COMMAND, 5, 11, 200), frame(EventKind.WAKE, 0, 11, 200),
                frame(EventKind.COMMAND, 0, 30, 200)):
        os.write(config.record_fd, lie)
        beat(0.7)
    os.write(config.record_fd, frame(EventKind.COMMAND, 0, 11, 300))
    beat(60.0)


def ruled_calls(hub, stop, config):
    """Calls that seccomp's argument rules must tell apart, printed as "probe NAME=RESULT
    ..." lines (few: the log filter passes a burst of ten). ioctls go to /dev/null, so a
    request that passes the filter fails in the driver with ENOTTY, and one the filter
    stops fails with EPERM."""
    import ctypes
    import errno
    import mmap
    import sys

    libc = ctypes.CDLL(None, use_errno=True)

    def outcome(result, err=None):
        err = (ctypes.get_errno() if err is None else err) if result != 0 else 0
        return errno.errorcode.get(err, str(err)) if err else "ok"

    def request(kind, number, size=64):
        return 0xC0000000 | size << 16 | ord(kind) << 8 | number

    fd = os.open("/dev/null", os.O_RDONLY)
    seen = []
    for name, kind, number in (("elem_read", "U", 0x12), ("elem_write", "U", 0x13),
                               ("elem_add", "U", 0x17), ("s_ctrl", "V", 28),
                               ("hw_params", "A", 0x11)):
        ctypes.set_errno(0)
        result = libc.ioctl(fd, ctypes.c_ulong(request(kind, number)), None)
        seen.append(f"{name}={outcome(result)}")
    print("probe " + " ".join(seen), file=sys.stderr, flush=True)
    seen = []
    for name, advice in (("fadv_willneed", 3), ("fadv_dontneed", 4)):
        result = libc.posix_fadvise(fd, 0, 0, advice)  # returns the error number
        seen.append(f"{name}={outcome(result, result)}")
    area = mmap.mmap(-1, 1 << 16)
    address = ctypes.addressof(ctypes.c_char.from_buffer(area))
    for name, advice in (("madv_normal", 0), ("madv_pageout", 21), ("madv_mergeable", 12)):
        ctypes.set_errno(0)
        result = libc.madvise(ctypes.c_void_p(address), ctypes.c_size_t(1 << 16), advice)
        seen.append(f"{name}={outcome(result)}")
    print("probe " + " ".join(seen), file=sys.stderr, flush=True)
    print("probe done", file=sys.stderr, flush=True)
    steady(hub, stop, config)
