"""The voice sensor: recognises only the commands its user enrolled (and a shipped wake
word), from a microphone, a file, a folder of clips or PCM on stdin; emits fixed-size
command events and nothing else. See docs/voice.md."""

from mlsensors.voice.matcher import CommandMatch, CommandSet
from mlsensors.voice.record import EventKind, VoiceEvent
from mlsensors.voice.sensor import VoiceOptions, VoiceSensor

__all__ = ["CommandMatch", "CommandSet", "EventKind", "VoiceEvent", "VoiceOptions",
           "VoiceSensor"]
