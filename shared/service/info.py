"""GET /v1/model (what this service runs) and GET /v1/models (what its weights folder holds)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from safetensors import safe_open

from shared.codec import wire
from shared.codec.config import ModelConfig
from shared.codec.weights import FORMAT
from shared.service.codes import bytes_per_code, formats
from shared.service.problems import problem_responses

router = APIRouter(tags=["model"], responses=problem_responses(401))


class ModelInfo(BaseModel):
    name: str = Field(description="model (preset) name", examples=["compact32"])
    half: str = Field(description="which half this service holds: encoder or decoder")
    kind: str = Field(description="'compact' (a linear bottleneck), 'rd' (entropy-coded latent) or 'seed'"
                      " (feature-map code)")
    fingerprint: str = Field(description="pair fingerprint: codes carry it; the other half must match")
    code_shape: list[int]
    code_numel: int = Field(description="numbers in one code")
    bytes_per_code: dict[str, int | str] = Field(
        description="bytes of one code in each wire format; 'variable' for entropy-coded codes, whose"
        " length is each image's information (plus a varint length on the binary form)")
    binary_header_bytes: int = Field(description="bytes of the binary form's header, once per request")
    input_shape: list[int] = Field(description="shape of one image (C, H, W)")
    formats: list[str] = Field(description="code formats this service reads and writes, its default first")


class ModelEntry(BaseModel):
    name: str
    active: bool = Field(description="the model this service runs")
    fingerprint: str | None = None
    kind: str | None = None
    code_shape: list[int] | None = None
    problem: str | None = Field(None, description="why the file's metadata could not be read")


class ModelList(BaseModel):
    half: str
    active: str
    models: list[ModelEntry]


@router.get("/model", response_model=ModelInfo)
def model(request: Request) -> ModelInfo:
    """The model this service runs: name, pair fingerprint, code size, bytes per code, input shape."""
    rt = request.app.state.runtime
    c = rt.config
    return ModelInfo(name=c.name, half=rt.spec.half, kind=c.kind, fingerprint=rt.weights.fingerprint,
                     code_shape=list(c.code_shape), code_numel=c.code_numel,
                     bytes_per_code=bytes_per_code(c), binary_header_bytes=wire.header_size(len(c.code_shape)),
                     input_shape=list(c.input_shape), formats=formats(c))


def describe(path: Path, half: str, active: bool) -> ModelEntry:
    """Read a half's metadata only (no tensors): enough to list it without loading it."""
    entry = ModelEntry(name=path.parent.name, active=active)
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
        if meta.get("format") != FORMAT or meta.get("half") != half:
            raise ValueError(f"not an aelink {half} half")
        config = ModelConfig.from_json(meta["config"])
    except Exception as e:  # a listing reports a bad file; it never fails because of one
        entry.problem = f"{path.name}: {e}"
        return entry
    entry.fingerprint, entry.kind, entry.code_shape = meta.get("fingerprint"), config.kind, list(config.code_shape)
    return entry


@router.get("/models", response_model=ModelList, response_model_exclude_none=True)
def models(request: Request) -> ModelList:
    """The models whose half of the weights is in this service's weights folder; the active one is marked."""
    rt, settings = request.app.state.runtime, request.app.state.settings
    half = rt.spec.half
    active_path = rt.path.resolve()
    found = sorted(settings.weights_dir.glob(f"*/{half}.safetensors")) if settings.weights_dir.is_dir() else []
    if active_path not in [p.resolve() for p in found]:
        found.append(rt.path)  # an explicit weights_path outside the folder is still listed
    entries = [describe(p, half, p.resolve() == active_path) for p in found]
    return ModelList(half=half, active=rt.config.name, models=entries)
