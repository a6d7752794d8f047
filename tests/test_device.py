"""The register-level device model: legal writes, refusals, presence-pin events."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wire_doubles import RecordingControl

from mlsensors.errors import ProtocolError
from mlsensors.hub import Hub, RegisterWrite
from mlsensors.types import PersonFace, PersonResult
from mlsensors.wire.device import DeviceState, PersonSensorDevice
from mlsensors.wire.registers import REGISTER_MAP, Mode, Register, check_write

FACE = PersonFace((10, 10, 60, 60), 90, True)
FIELDS = {Register.ENABLE_ID: "enable_id", Register.PERSIST_IDS: "persist_ids",
          Register.DEBUG_MODE: "debug_mode"}


def make() -> tuple[PersonSensorDevice, RecordingControl]:
    control = RecordingControl()
    return PersonSensorDevice(control), control


def test_power_on_defaults() -> None:
    device, control = make()
    assert device.state == DeviceState(Mode.CONTINUOUS, False, True, True)
    assert control.calls == []
    device.reset()
    assert control.calls == [
        ("set_continuous", True), ("set_identification", False),
        ("set_persist", True), ("set_debug", True),
    ]
    assert {r: s.default for r, s in REGISTER_MAP.items()} == {
        Register.MODE: 1, Register.ENABLE_ID: 0, Register.SINGLE_SHOT: None,
        Register.CALIBRATE_ID: None, Register.PERSIST_IDS: 1, Register.ERASE_IDS: None,
        Register.DEBUG_MODE: 1,
    }


@pytest.mark.parametrize(
    ("register", "value", "call", "state"),
    [
        (0x01, 0, ("set_continuous", False), {"mode": Mode.STANDBY}),
        (0x02, 1, ("set_identification", True), {"enable_id": True}),
        (0x04, 7, ("calibrate", 7), {}),
        (0x05, 0, ("set_persist", False), {"persist_ids": False}),
        (0x06, 0, ("erase_ids", None), {}),
        (0x07, 0, ("set_debug", False), {"debug_mode": False}),
    ],
)
def test_each_register_calls_the_sensor(register, value, call, state) -> None:
    device, control = make()
    new = device.write(RegisterWrite(register, value))
    assert control.calls == [call]
    assert new == DeviceState(**state)
    assert device.state == new


def test_single_shot_only_in_standby() -> None:
    device, control = make()
    with pytest.raises(ProtocolError, match="only in standby"):
        device.write(RegisterWrite(Register.SINGLE_SHOT, 0))
    assert control.calls == []
    device.write(RegisterWrite(Register.MODE, 0))
    device.write(RegisterWrite(Register.SINGLE_SHOT, 0))
    device.write(RegisterWrite(Register.SINGLE_SHOT, 1))
    assert control.calls == [("set_continuous", False), ("single_shot", None),
                             ("single_shot", None)]


@pytest.mark.parametrize(
    ("register", "value", "message"),
    [
        (0x00, 0, "unknown register 0x00"),
        (0x08, 1, "unknown register 0x08"),
        (0xFF, 1, "unknown register 0xff"),
        (0x01, 2, "not valid for MODE"),
        (0x02, 255, "not valid for ENABLE_ID"),
        (0x04, 8, "not valid for CALIBRATE_ID"),
        (0x05, 3, "not valid for PERSIST_IDS"),
        (0x07, 128, "not valid for DEBUG_MODE"),
    ],
)
def test_illegal_writes_rejected_without_state_change(register, value, message) -> None:
    device, control = make()
    before = device.state
    with pytest.raises(ProtocolError, match=message):
        device.write(RegisterWrite(register, value))
    assert device.state == before
    assert control.calls == []


def test_refusal_by_sensor_changes_nothing() -> None:
    device, control = make()
    control.refuse.add("set_identification")
    with pytest.raises(ProtocolError, match="ENABLE_ID refused by the sensor"):
        device.write(RegisterWrite(Register.ENABLE_ID, 1))
    assert device.state.enable_id is False


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 255), st.integers(0, 255)), max_size=30))
def test_random_writes_follow_the_register_map(writes) -> None:
    """Model check: a write changes state iff it is legal; the state is what it says."""
    device, control = make()
    expected = DeviceState()
    for register, value in writes:
        try:
            reg = check_write(register, value)
            legal = not (reg is Register.SINGLE_SHOT and expected.mode != Mode.STANDBY)
        except ProtocolError:
            legal = False
        calls_before = len(control.calls)
        if not legal:
            with pytest.raises(ProtocolError):
                device.write(RegisterWrite(register, value))
            assert len(control.calls) == calls_before
        else:
            device.write(RegisterWrite(register, value))
            assert len(control.calls) == calls_before + 1
            if reg is Register.MODE:
                expected = dataclasses.replace(expected, mode=Mode(value))
            elif reg in FIELDS:
                expected = dataclasses.replace(expected, **{FIELDS[reg]: bool(value)})
        assert device.state == expected


def test_hub_commands_reach_the_device_and_presence_follows_faces() -> None:
    hub = Hub()
    device, control = make()
    events: list[bool] = []
    device.on_presence(events.append)
    detach = device.attach(hub)

    hub.command(RegisterWrite(Register.ENABLE_ID, 1))
    assert control.calls == [("set_identification", True)]
    with pytest.raises(ProtocolError):
        hub.command(RegisterWrite(Register.CALIBRATE_ID, 9))

    hub.publish(PersonResult(1.0, (FACE,)))
    hub.publish(PersonResult(2.0, (FACE, FACE)))  # still high: no new event
    hub.publish(PersonResult(3.0))
    hub.publish(PersonResult(4.0, (FACE,)))
    assert events == [True, False, True]
    hub.command(RegisterWrite(Register.MODE, 0))  # standby drops the pin
    assert events == [True, False, True, False]
    hub.publish(PersonResult(5.0, (FACE,)))  # a single shot's faces do not raise it
    assert device.presence is False
    hub.command(RegisterWrite(Register.MODE, 1))
    assert events[-1] is True

    detach()
    with pytest.raises(ProtocolError, match="not accepting commands"):
        hub.command(RegisterWrite(Register.MODE, 1))


def test_failing_listener_does_not_break_publishing() -> None:
    hub = Hub()
    device, _ = make()
    seen: list[bool] = []

    def broken(level: bool) -> None:
        raise RuntimeError("gpio gone")

    device.on_presence(broken)
    unsubscribe = device.on_presence(seen.append)
    device.attach(hub)
    hub.publish(PersonResult(1.0, (FACE,)))
    assert seen == [True]
    unsubscribe()
    hub.publish(PersonResult(2.0))
    assert seen == [True]
