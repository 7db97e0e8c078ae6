"""Content negotiation: which form a request body is in, and which form the client wants back."""

from __future__ import annotations

from fastapi import Request

from shared.service.problems import Problem


def content_type(request: Request) -> str:
    """The body's media type, lowercased and without parameters ('' when absent)."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def _accepted(header: str) -> list[tuple[float, int, str]]:
    ranges = []
    for i, part in enumerate(header.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for p in params:
            if p.startswith("q="):
                try:
                    q = float(p[2:])
                except ValueError:
                    q = 0.0
        if media:
            ranges.append((q, -i, media.lower()))
    return sorted(ranges, reverse=True)  # highest q first; ties keep the client's order


def choose(request: Request, offers: list[str]) -> str:
    """The best of `offers` for the Accept header; the first offer when Accept is absent or */*."""
    header = request.headers.get("accept", "").strip()
    if not header:
        return offers[0]
    for q, _, media in _accepted(header):
        if q <= 0:
            continue
        if media in ("*/*", "*"):
            return offers[0]
        for offer in offers:
            if media == offer or (media.endswith("/*") and offer.startswith(media[:-1])):
                return offer
    raise Problem(406, "not-acceptable", f"cannot answer in {header!r}; this endpoint offers {', '.join(offers)}")


def unsupported(kind: str, offers: list[str]) -> Problem:
    return Problem(415, "unsupported-media-type",
                   f"cannot read a {kind or 'body without Content-Type'}; send one of {', '.join(offers)}")
