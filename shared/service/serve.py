"""Run a service with uvicorn: `python -m services.encoder [--port ...]` and `aelink serve` land here."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI

from shared.service.settings import ServiceSettings, SettingsError, load_settings

STARTUP_FAILED = 3  # uvicorn's own status for a failed start-up
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def add_serve_args(p: argparse.ArgumentParser) -> None:
    """Flags that override the environment settings of the same name."""
    p.add_argument("--host", help="address to listen on")
    p.add_argument("--port", type=int, help="port to listen on")
    p.add_argument("--model", help="model (preset) to serve, e.g. compact32")
    p.add_argument("--weights-dir", type=Path, help="folder holding <model>/<half>.safetensors")


def serve(settings_cls: type[ServiceSettings], create_app: Callable[[ServiceSettings], FastAPI],
          argv: list[str] | None, prog: str) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=f"Run the aelink {prog} service.")
    add_serve_args(parser)
    args = parser.parse_args(argv)
    overrides = {"host": args.host, "port": args.port, "model": args.model, "weights_dir": args.weights_dir}
    try:
        settings = load_settings(settings_cls, **overrides)
    except SettingsError as e:
        print(f"{prog}: {e}", file=sys.stderr)
        return 2
    import uvicorn  # here, not at import: building the app must not need a server

    logging.basicConfig(level=settings.log_level.upper().replace("TRACE", "DEBUG"),
                        format="%(levelname)s:     %(name)s: %(message)s")
    if settings.workers > 1:
        return _serve_workers(settings, settings_cls, create_app, overrides)
    config = uvicorn.Config(create_app(settings), host=settings.host, port=settings.port,
                            log_level=settings.log_level, server_header=False,
                            timeout_graceful_shutdown=settings.shutdown_timeout_seconds)
    logging.getLogger("uvicorn.error").addFilter(_drop_weights_traceback)  # after Config set up logging
    server = uvicorn.Server(config)
    server.run()
    return 0 if server.started else STARTUP_FAILED


def _serve_workers(settings: ServiceSettings, settings_cls: type[ServiceSettings],
                   create_app: Callable[[ServiceSettings], FastAPI], overrides: dict) -> int:
    """WORKERS processes under uvicorn's supervisor, each building the app (and loading the half) itself
    from the environment: the command-line overrides are passed on there. Metrics go to a directory of
    files all workers share (prometheus-client's multiprocess mode), made here and removed at exit."""
    import uvicorn

    from shared.codec.weights import WeightsError

    runtime = create_app(settings).state.runtime
    try:  # the weights are checked once here, so a bad file stops start-up with one message
        runtime.load()
    except WeightsError as e:
        logging.getLogger("aelink.service").error("cannot start the %s service: %s", runtime.spec.half, e)
        return STARTUP_FAILED
    del runtime  # the workers load their own
    prefix = settings_cls.model_config.get("env_prefix", "")
    for name, value in overrides.items():
        if value is not None:
            os.environ[f"{prefix}{name.upper()}"] = str(value)
    made = None
    if not os.environ.get(MULTIPROC_ENV):
        made = os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="aelink-metrics-")
    else:  # the operator's directory: values left by an earlier run would be counted again
        for old in Path(os.environ[MULTIPROC_ENV]).glob("*.db"):
            old.unlink()
    try:
        uvicorn.run(f"{create_app.__module__}:{create_app.__name__}", factory=True, workers=settings.workers,
                    host=settings.host, port=settings.port, log_level=settings.log_level, server_header=False,
                    timeout_graceful_shutdown=settings.shutdown_timeout_seconds)
    finally:
        if made:
            shutil.rmtree(made, ignore_errors=True)
    return 0


def _drop_weights_traceback(record: logging.LogRecord) -> bool:
    """A bad weights file is the user's to fix, not a bug: the app has logged one line naming the file
    and the problem, so the traceback uvicorn would print after it only buries that line."""
    text = record.getMessage()
    return not (text.startswith("Traceback") and "WeightsError:" in text)
