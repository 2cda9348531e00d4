#!/usr/bin/env python
"""Summarise py-spy ``--format raw`` (collapsed stacks) files: where the time goes.

    python benchmarks/profile_summary.py PROFILE.txt [...] [--top 25] [--grep orchestrator]

Prints, over all the given files, each function's inclusive share of the samples (the
function or anything it called was running) and its self share (it was on top), and
the share spent idle (waiting for a message: the pool's read loop). ``run.py --profile
DIR`` writes such files for the worker's pool processes and the beat.
"""

from __future__ import annotations

import argparse
import collections
import re
from pathlib import Path

#: Frames that mean "waiting for work", not "working".
IDLE = re.compile(
    r"\b(_recv|recv|read|select|poll|_wait_for_data|wait|sleep|epoll|accept|_poll|"
    r"receive|get_message|_read_from_socket)\b \(.*(selectors|socket|connection|threading|"
    r"billiard|time|kombu/utils/eventio|redis/_parsers|redis/connection|select)"
)


def _records(text: str) -> list[str]:
    """The "stack count" records of a raw profile. A frame's name can hold a newline
    (py-spy names some frames of generated code by their text), so a record ends only
    at a line ending in a count."""
    records, pending = [], ""
    for line in text.splitlines():
        pending += line
        if re.search(r" \d+$", pending):
            records.append(pending)
            pending = ""
    return records


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--grep", default="", help="only functions whose frame matches")
    args = parser.parse_args()
    inclusive: collections.Counter[str] = collections.Counter()
    self_: collections.Counter[str] = collections.Counter()
    total = 0
    for path in args.files:
        for line in _records(path.read_text()):
            stack, _, count_text = line.rpartition(" ")
            if not stack:
                continue
            count = int(count_text)
            frames = stack.split(";")
            total += count
            self_[frames[-1]] += count
            for frame in set(frames):
                inclusive[frame] += count
    print(f"{total} samples in {len(args.files)} file(s)")
    print(f"{'incl%':>6} {'self%':>6}  function")
    shown = 0
    for frame, count in inclusive.most_common():
        if args.grep and args.grep not in frame:
            continue
        print(f"{100 * count / total:6.1f} {100 * self_[frame] / total:6.1f}  {frame}")
        shown += 1
        if shown >= args.top:
            break
    print("\ntop self time:")
    for frame, count in self_.most_common(args.top):
        print(f"{100 * count / total:6.1f}  {frame}")


if __name__ == "__main__":
    main()
