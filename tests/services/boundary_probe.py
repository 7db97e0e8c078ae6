"""Run by test_service_boundary in a fresh interpreter: build one service's app exactly as uvicorn would,
run its start-up (load, verify, warm up), then print what the process holds as JSON.

Usage: python boundary_probe.py encoder|decoder   (weights from AELINK_<HALF>_WEIGHTS_DIR)
"""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
import time


async def started(app) -> dict:
    async with app.router.lifespan_context(app):
        runtime = app.state.runtime
        deadline = time.monotonic() + 60
        while not runtime.ready and time.monotonic() < deadline:  # warm-up runs in the background
            await asyncio.sleep(0.05)
        return {"ready": runtime.ready, "state_keys": sorted(runtime.module.state_dict()),
                "modules": sorted(sys.modules)}


def main(half: str) -> None:
    app = importlib.import_module(f"services.{half}.main").create_app()
    print(json.dumps(asyncio.run(started(app))))


if __name__ == "__main__":
    main(sys.argv[1])
