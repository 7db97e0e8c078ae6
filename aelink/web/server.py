"""Serve the drawing page: its static files and config.json (each model's encoder and decoder URLs).

The page talks to the services itself, from the browser, as any client does: the image goes to the
encoder, only the code to the decoder. This server never sees an image or a code.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from importlib import resources

from starlette.applications import Starlette
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

STATIC = resources.files("aelink.web") / "static"


@dataclass(frozen=True)
class Pair:
    """One model's sender and receiver, as the browser reaches them."""

    name: str
    encoder: str
    decoder: str

    @classmethod
    def parse(cls, text: str) -> Pair:
        """NAME=ENCODER_URL,DECODER_URL"""
        name, _, urls = text.partition("=")
        parts = [u.strip().rstrip("/") for u in urls.split(",")]
        if not name or len(parts) != 2 or not all(u.startswith(("http://", "https://")) for u in parts):
            raise ValueError(f"--pair {text!r}: expected NAME=http://encoder:port,http://decoder:port")
        return cls(name.strip(), *parts)


def build_app(pairs: list[Pair]) -> Starlette:
    """The page, and config.json listing the pairs in the page's order."""
    config = {"models": [asdict(p) for p in pairs]}

    async def index(request):
        return FileResponse(str(STATIC / "index.html"))

    async def config_json(request):
        return JSONResponse(config, headers={"Cache-Control": "no-store"})

    return Starlette(routes=[Route("/", index), Route("/config.json", config_json),
                             Mount("/static", StaticFiles(directory=str(STATIC)), name="static")])


def serve(pairs: list[Pair], host: str = "127.0.0.1", port: int = 8080, on_ready=None) -> None:
    """Run the page server until interrupted; `on_ready()` is called once it listens."""
    import uvicorn

    class Server(uvicorn.Server):
        async def startup(self, sockets=None) -> None:
            await super().startup(sockets)
            if self.started and on_ready is not None:
                on_ready()

    Server(uvicorn.Config(build_app(pairs), host=host, port=port, log_level="warning")).run()
