"""The app factory in this process (no server): readiness before and after start-up, and the listing of a
weights folder that holds a broken file. Everything else runs against real servers."""

from __future__ import annotations

import asyncio
import shutil

import httpx
import pytest

from services.encoder.main import create_app
from services.encoder.settings import EncoderSettings

pytestmark = pytest.mark.timeout(60)


def test_readyz_is_503_until_start_up_has_loaded_and_warmed_up(weights_dir, tmp_path):
    shutil.copytree(weights_dir / "compact32", tmp_path / "compact32", ignore=shutil.ignore_patterns("decoder*", "*.pt"))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "encoder.safetensors").write_bytes(b"garbage")
    app = create_app(EncoderSettings(weights_dir=tmp_path, model="compact32"))

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app)  # runs no lifespan: the app as it is before start-up
        async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
            r = await client.get("/readyz")
            assert r.status_code == 503 and r.headers["content-type"] == "application/problem+json"
            assert r.json()["detail"] == "weights not loaded yet" and r.headers["retry-after"] == "1"
            assert (await client.get("/healthz")).status_code == 200
            async with app.router.lifespan_context(app):
                for _ in range(200):
                    if (await client.get("/readyz")).status_code == 200:
                        break
                    await asyncio.sleep(0.05)
                assert (await client.get("/readyz")).json() == {"status": "ready"}
                listing = (await client.get("/v1/models")).json()
            assert (await client.get("/readyz")).json()["detail"] == "shutting down"
        entries = {m["name"]: m for m in listing["models"]}
        assert set(entries) == {"compact32", "broken"} and entries["compact32"]["active"]
        assert "encoder.safetensors" in entries["broken"]["problem"] and not entries["broken"]["active"]

    asyncio.run(scenario())
