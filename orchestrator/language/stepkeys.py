"""State names inside step keys: the one escape, and its decode for display.

A step key names one active state: its state name, prefixed by the Parallel branches and
Map iterations it runs in (``Map[3]/Charge``), and step-hash fields add ``|`` and a
suffix (``Charge|s``). Step Functions allows any state name of 1-80 characters, ``/``,
``[``, ``]`` and ``|`` included, so a name goes into a key escaped: each of those
characters, and ``%`` itself, as ``%`` and its two hexadecimal digits (``Parallel w/
UUID`` -> ``Parallel w%2F UUID``). An escaped name holds no separator, so a key splits on
``/``, ``[`` and ``|`` as before; a name without those characters is its own escape.
History events, ``$$.State.Name``, the UI and the CLI show the name, never its escape.
"""

from __future__ import annotations

import re

__all__ = ["RESERVED", "display_key", "escape_name", "unescape_name"]

#: Characters a state name may hold that step keys use (``%``: the escape itself).
RESERVED = "%/[]|"

_ESCAPES = {c: f"%{ord(c):02X}" for c in RESERVED}
_ESCAPE_RE = re.compile("[" + re.escape(RESERVED) + "]")
_UNESCAPE_RE = re.compile("%(25|2F|5B|5D|7C)")


def escape_name(name: str) -> str:
    """``name`` as it goes into a step key: no ``/``, ``[``, ``]`` or ``|`` in it."""
    if not _ESCAPE_RE.search(name):
        return name
    return _ESCAPE_RE.sub(lambda m: _ESCAPES[m.group()], name)


def unescape_name(part: str) -> str:
    """The state name a step key's part (from :func:`escape_name`) stands for."""
    if "%" not in part:
        return part
    return _UNESCAPE_RE.sub(lambda m: chr(int(m.group(1), 16)), part)


def display_key(step_key: str) -> str:
    """A step key for people to read: its names as the definition spells them
    (``Parallel w%2F UUID[0]/Check`` -> ``Parallel w/ UUID[0]/Check``); not parsed back."""
    return unescape_name(step_key)
