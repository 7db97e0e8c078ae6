"""`aelink web`: serve the drawing page for running services (one encoder and decoder pair per model).

The services must let the page's origin call them: start each with AELINK_ENCODER_CORS_ORIGINS /
AELINK_DECODER_CORS_ORIGINS set to the page's URL without its path (e.g. http://localhost:8080).
`aelink demo --web` starts the services and the page together.
"""

from __future__ import annotations

import argparse
import contextlib
import sys

DEFAULT_MODELS = "compact32,rd10,rd16,rd64"


def register(sub) -> None:
    p = sub.add_parser("web", help="serve the drawing page for running services", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pair", action="append", required=True, metavar="NAME=ENCODER_URL,DECODER_URL",
                   help="a model's services as the browser reaches them (repeat for more models)")
    add_page_args(p)
    p.set_defaults(run=run)


def add_page_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address the page listens on (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8080, help="port of the page (default: 8080; 0: a free one)")


def page_origins(port: int) -> str:
    """The origins a browser on this machine sends for the page, for the services' CORS_ORIGINS."""
    return f"http://127.0.0.1:{port},http://localhost:{port}"


def serve_page(pairs, host: str, port: int) -> int:
    from aelink.web.server import serve

    def ready() -> None:
        shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        print(f"the drawing page is at http://{shown}:{port}/  (Ctrl-C stops it)", flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        serve(pairs, host, port, on_ready=ready)
    return 0


def run(args: argparse.Namespace) -> int:
    from aelink.client import free_port
    from aelink.web.server import Pair

    pairs = [Pair.parse(text) for text in args.pair]
    port = args.port or free_port()
    for p in pairs:
        print(f"{p.name}: encoder {p.encoder}, decoder {p.decoder}", file=sys.stderr)
    return serve_page(pairs, args.host, port)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt  # SIGTERM stops the demo as Ctrl-C does: services stopped on the way out


def demo_web(args: argparse.Namespace) -> int:
    """`aelink demo --web`: an encoder and decoder pair per model on loopback, then the page for them."""
    import signal

    from aelink.client import LocalService, ServiceError, free_port
    from aelink.web.server import Pair

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models:
        raise ValueError("--models: give at least one model")
    port = args.port or free_port()
    signal.signal(signal.SIGTERM, _interrupt)
    pairs, services = [], []
    try:
        for model in models:
            started = []
            for half in ("encoder", "decoder"):
                env = {f"AELINK_{half.upper()}_MODEL": model, f"AELINK_{half.upper()}_CORS_ORIGINS": page_origins(port)}
                if args.weights_dir:
                    env[f"AELINK_{half.upper()}_WEIGHTS_DIR"] = str(args.weights_dir.resolve())
                started.append(LocalService(half, env=env).start())  # all start before any is waited for
            services += started
            pairs.append(Pair(model, started[0].url, started[1].url))
        print(f"starting {len(services)} services ({', '.join(models)}) on loopback ...", flush=True)
        for s in services:
            s.wait_ready(timeout=300)  # eight services on two cores take a while
        for p in pairs:
            print(f"{p.name}: encoder {p.encoder}, decoder {p.decoder}: ready", flush=True)
        return serve_page(pairs, args.host, port)
    except ServiceError as e:
        print(f"aelink demo --web: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        for s in services:
            s.stop()
        print("stopped the services", flush=True)
