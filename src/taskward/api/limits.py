"""Request body size limit, as pure ASGI middleware: checked before anything parses the body.

A declared ``Content-Length`` over the limit is refused at once, without reading a byte.
Otherwise the body is read here, chunk by chunk (so chunked uploads, which declare no
length, count too), and refused as soon as it passes the limit; a body within the limit is
handed to the app in one piece.

After a 413 the server discards the rest of the body and keeps the connection, so the
client, still sending, gets to read the answer (closing at once would reset the connection
under it and lose the 413). Only a declared body far beyond the limit (more than
``CLOSE_FACTOR`` times) closes the connection, so it is not read at all.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["MAX_BODY", "BodyLimit"]

#: The default limit: 1 MiB.
MAX_BODY = 1024 * 1024
CLOSE_FACTOR = 16


class BodyLimit:
    """Refuse request bodies larger than ``max_body`` bytes with 413 (paths under ``prefixes``)."""

    def __init__(
        self, app: ASGIApp, max_body: int = MAX_BODY, prefixes: tuple[str, ...] = ("",)
    ) -> None:
        if isinstance(max_body, bool) or not isinstance(max_body, int) or max_body < 0:
            raise ValueError(f"max_body must be an integer >= 0, not {max_body!r}")
        self.app = app
        self.max_body = max_body
        self.prefixes = prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not str(scope.get("path", "")).startswith(self.prefixes):
            await self.app(scope, receive, send)
            return
        for key, value in scope.get("headers", ()):
            if key == b"content-length":
                if value.isdigit() and int(value) > self.max_body:
                    await self._refuse(send, close=int(value) > CLOSE_FACTOR * self.max_body)
                    return
                break
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left: let the app see it
                await self.app(scope, _replay(message, receive), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await self._refuse(send, close=False)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        first: Message = {"type": "http.request", "body": body, "more_body": False}
        await self.app(scope, _replay(first, receive), send)

    async def _refuse(self, send: Send, *, close: bool) -> None:
        body = json.dumps(
            {"detail": f"the request body is larger than the limit of {self.max_body} bytes"}
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        if close:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def _replay(first: Message, receive: Receive) -> Receive:
    """A ``receive`` that gives ``first`` once, then defers to the real one."""
    pending: list[Message] = [first]

    async def replayed() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replayed
