"""The person sensor as a kind of the sealed spine: its record, check, stamp and work.

The records are the Person Sensor's own (`wire.record`, checked by `channel.decode_result`):
a stream of states, the newest winning each guard tick, withdrawn (no faces) when late.
"""

from __future__ import annotations

import time

from mlsensors.privacy.kind import RecordCheck, RecordKind


def _person_check(config) -> RecordCheck:
    from mlsensors.privacy.channel import decode_result

    def check(body: bytes, now: float, skipped: int):
        return decode_result(body)

    return check


def _person_stamp(result, published: int, when: float):
    from mlsensors.types import PersonResult

    return PersonResult(when, result.faces, published)


def _person_empty(published: int):
    from mlsensors.types import PersonResult

    return PersonResult(time.time(), (), published)


PERSON = RecordKind(
    name="person",
    tag=ord("R"),
    work="mlsensors.person.child:person_sensor",
    checker=_person_check,
    stamp=_person_stamp,
    empty=_person_empty,
    streaming=True,
)
