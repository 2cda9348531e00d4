"""``python -m orchestrator.ui [--host HOST] [--port PORT]``: serve the web UI."""

from __future__ import annotations

import argparse
import sys

from orchestrator.ui.app import serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m orchestrator.ui", description="Serve the orchestrator's web UI."
    )
    parser.add_argument("--host", default="127.0.0.1", help="Interface (default 127.0.0.1).")
    parser.add_argument("--port", type=int, default=8080, help="Port (default 8080).")
    parser.add_argument(
        "--insecure-no-token",
        action="store_true",
        help="Listen on a non-loopback host without ORCHESTRATOR_UI_TOKEN.",
    )
    args = parser.parse_args(argv)
    try:
        serve(args.host, args.port, insecure_no_token=args.insecure_no_token)
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
