"""Request size limits, enforced while the body streams in, before anything parses it."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.service.problems import Problem, problem_response


def too_large(limit: int) -> Problem:
    return Problem(413, "request-too-large", f"request body exceeds the limit of {limit} bytes")


class BodyLimitMiddleware:
    """Refuses a body over `max_bytes`: up front from Content-Length, else as soon as the stream passes it.

    Both checks are needed: chunked uploads carry no Content-Length.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        early = None
        if declared is not None and not declared.isdigit():
            early = Problem(400, "bad-content-length", f"Content-Length {declared.decode(errors='replace')!r}"
                            " is not a number")
        elif declared is not None and int(declared) > self.max_bytes:
            early = too_large(self.max_bytes)
        if early is not None:
            await problem_response(scope["path"], early)(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise too_large(self.max_bytes)  # answered by the Problem handler inside the app
            return message

        await self.app(scope, counted, send)
