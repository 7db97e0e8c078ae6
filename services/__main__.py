"""`python -m services [encoder|decoder] [flags]`: run one half (default: $AELINK_HALF, as in the images).

`python -m services [HALF] healthcheck` exits 0 when that service, on this host, answers /readyz with
200: the images' HEALTHCHECK. It imports only the half's settings (no torch), so it stays cheap.
"""

from __future__ import annotations

import importlib
import os
import sys
import urllib.error
import urllib.request

HALVES = ("encoder", "decoder")


def healthcheck(half: str) -> int:
    from shared.service.settings import SettingsError, load_settings

    module = importlib.import_module(f"services.{half}.settings")
    try:
        settings = load_settings(getattr(module, f"{half.capitalize()}Settings"))
    except SettingsError as e:
        print(f"{half}: {e}", file=sys.stderr)
        return 1
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    try:
        with urllib.request.urlopen(f"http://{host}:{settings.port}/readyz", timeout=2) as r:
            return 0 if r.status == 200 else 1
    except (OSError, urllib.error.URLError) as e:
        print(f"{half} on {host}:{settings.port}: not ready ({e})", file=sys.stderr)
        return 1


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    half = args.pop(0) if args and args[0] in HALVES else os.environ.get("AELINK_HALF", "")
    if half not in HALVES:
        print("usage: python -m services encoder|decoder [healthcheck | flags] (or set AELINK_HALF)",
              file=sys.stderr)
        return 2
    if args[:1] == ["healthcheck"]:
        return healthcheck(half)
    # Only the named half's package is imported: the other half's code never enters this process.
    return importlib.import_module(f"services.{half}.main").main(args)


if __name__ == "__main__":
    sys.exit(main())
