"""The page in docker-compose and `aelink web`: the browser is pointed at the services' published ports,
and both services let the page's origin in (checked on the files; no Docker needed)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from aelink.cli import main
from aelink.web.server import Pair
from services.encoder.settings import EncoderSettings
from shared.service.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parents[2]


def test_compose_serves_the_page_for_the_published_services():
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    web = services["web"]
    assert web["build"]["dockerfile"] == "services/demo/Dockerfile"  # the client image: no weights
    assert web["ports"] == ["8080:8080"] and web["command"][:2] == ["aelink", "web"]
    pair = web["command"][web["command"].index("--pair") + 1]
    assert "http://localhost:8001" in pair and "http://localhost:8002" in pair
    for half in ("encoder", "decoder"):
        assert services[half]["ports"][0].split(":")[0] == {"encoder": "8001", "decoder": "8002"}[half]
        origins = services[half]["environment"][f"AELINK_{half.upper()}_CORS_ORIGINS"]
        assert "http://localhost:8080" in origins


def test_pairs_and_cors_settings_are_checked(monkeypatch, capsys):
    assert Pair.parse("rd10=http://a:1/,http://b:2") == Pair("rd10", "http://a:1", "http://b:2")
    for bad in ("rd10", "rd10=http://a:1", "=http://a:1,http://b:2", "rd10=a:1,b:2"):
        with pytest.raises(ValueError, match="NAME="):
            Pair.parse(bad)
    assert main(["web", "--pair", "x=nonsense"]) == 2 and "expected NAME=" in capsys.readouterr().err
    monkeypatch.setenv("AELINK_ENCODER_CORS_ORIGINS", "http://localhost:8080, https://demo.example")
    assert load_settings(EncoderSettings).origins == ["http://localhost:8080", "https://demo.example"]
    monkeypatch.setenv("AELINK_ENCODER_CORS_ORIGINS", "localhost:8080/page")
    with pytest.raises(SettingsError, match="AELINK_ENCODER_CORS_ORIGINS"):
        load_settings(EncoderSettings)
    monkeypatch.delenv("AELINK_ENCODER_CORS_ORIGINS")
    assert load_settings(EncoderSettings).origins == []  # closed unless set
