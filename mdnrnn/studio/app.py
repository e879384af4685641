"""The studio's ASGI app (Starlette): pages, the model list, and the WebSocket endpoint.

Routes:

- `/`: the start page (links to the drawing and performance pages, the model list).
- `/draw`, `/play`: the drawing page (stroke models) and the performance page (touch
  models); `?model=NAME` picks a model.
- `/api/models`: the models and limits as JSON.
- `/ws`: the WebSocket (protocol: `mdnrnn.studio.protocol`, docs/serve.md).
- `/static/...`: the pages' scripts and styles.
"""

from __future__ import annotations

import itertools
import json
import logging
import sys
from pathlib import Path

from starlette.applications import Starlette
from starlette.responses import FileResponse, JSONResponse, RedirectResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from mdnrnn.studio import protocol
from mdnrnn.studio.protocol import Limits, ProtocolError
from mdnrnn.studio.session import Session, Worker

STATIC = Path(__file__).resolve().parent / "static"
log = logging.getLogger("mdnrnn.studio")

# Close code for "server full" (RFC 6455 1013: try again later).
TRY_AGAIN_LATER = 1013


class Studio:
    """The models, the limits and the live sessions of one server.

    Args:
        models: Name -> `ModelEntry` (see `mdnrnn.studio.session.load_entries`).
        limits: `Limits`. Defaults to `Limits()`.
    """

    def __init__(self, models: dict, limits: Limits = Limits()):
        if not models:
            raise ValueError("The studio needs at least one model.")
        self.models = models
        self.limits = limits
        self.sessions: dict[int, Session] = {}
        self._ids = itertools.count(1)
        # All generation work, every session's, on one thread (see session.py).
        self.worker = Worker()

    def close(self):
        """Stops the worker thread; call once the server has stopped."""
        self.worker.close()

    def first(self, kind: str) -> str | None:
        """Name of the first model of `kind` ("drawing" or "performance"), if any."""
        return next((name for name, entry in self.models.items() if entry.kind == kind), None)

    async def websocket(self, websocket: WebSocket):
        await websocket.accept()
        if len(self.sessions) >= self.limits.max_sessions:
            await websocket.send_json({"type": "error", "code": "too_many_sessions",
                                       "message": f"The server has {self.limits.max_sessions} sessions "
                                                  "already; try again later."})
            await websocket.close(TRY_AGAIN_LATER)
            return
        session_id = next(self._ids)

        async def send(frame):
            if websocket.client_state == WebSocketState.CONNECTED:
                await websocket.send_text(json.dumps(frame, separators=(",", ":")))

        session = Session(self.models, self.limits, send, session_id, self.worker)
        self.sessions[session_id] = session
        try:
            await send(session.ready_frame())
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                text = message.get("text")
                try:
                    if text is None:
                        raise ProtocolError("bad_message", "Binary frames are not part of the protocol; "
                                                           "send JSON text.")
                    await session.handle(protocol.parse(text, self.limits, self.models))
                except ProtocolError as error:
                    await send(error.frame())
        except WebSocketDisconnect:
            pass
        finally:
            await session.close()
            del self.sessions[session_id]


def create_app(models: dict, limits: Limits = Limits()) -> Starlette:
    """The studio as an ASGI app.

    Args:
        models: Name -> `ModelEntry` (`load_entries(["kanji", "touch"])` for the
            pretrained ones).
        limits: The server's `Limits`.

    Returns:
        A Starlette app; its `state.studio` is the `Studio` (models, limits, sessions).
    """
    studio = Studio(models, limits)

    async def index(request):
        return FileResponse(STATIC / "index.html")

    async def draw(request):
        if studio.first("drawing") is None:
            return RedirectResponse("/")
        return FileResponse(STATIC / "draw.html")

    async def play(request):
        if studio.first("performance") is None:
            return RedirectResponse("/")
        return FileResponse(STATIC / "play.html")

    async def models_json(request):
        return JSONResponse({"models": [e.info() for e in studio.models.values()],
                             "limits": studio.limits.to_dict(), "sessions": len(studio.sessions)})

    app = Starlette(routes=[
        Route("/", index), Route("/draw", draw), Route("/play", play),
        Route("/api/models", models_json),
        WebSocketRoute("/ws", studio.websocket),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ])
    app.state.studio = studio
    return app


def serve(models: dict, host: str = "127.0.0.1", port: int = 8000, limits: Limits = Limits(),
          log_level: str = "warning", on_ready=None):
    """Runs the studio with uvicorn until Ctrl-C (or SIGTERM) stops it.

    Args:
        models: Name -> `ModelEntry`.
        host: Interface to bind; the default serves this machine only. Defaults to
            `"127.0.0.1"`.
        port: TCP port (0 picks a free one). Defaults to 8000.
        limits: `Limits`.
        log_level: uvicorn's log level. Defaults to `"warning"`.
        on_ready: Called with the URL once the server listens.
    """
    import asyncio

    import uvicorn
    from threadpoolctl import threadpool_limits

    # One BLAS thread for the server's life: a step's matrix-vector products are too small
    # to split, and OpenBLAS threads woken and put to sleep at every step stalled the
    # streams of concurrent clients (docs/benchmarks.md, "Studio").
    threadpool_limits(limits=1, user_api="blas")
    # The event loop and the worker thread hand the GIL to each other at every job; the
    # default 5 ms switch interval would add up to 5 ms to each hand-over.
    sys.setswitchinterval(0.0005)
    app = create_app(models, limits)
    # uvicorn drops a connection whose frame is over ws_max_size; below that, an oversized
    # message gets the protocol's `too_large` error frame and the session goes on.
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, ws="websockets-sansio",
                            ws_max_size=4 * limits.max_message_bytes, lifespan="off")
    server = uvicorn.Server(config)

    async def run():
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.02)
        if server.started and on_ready is not None:
            bound = server.servers[0].sockets[0].getsockname()[1]
            on_ready(f"http://{'[' + host + ']' if ':' in host else host}:{bound}/")
        await task

    try:
        asyncio.run(run())
    except SystemExit as exit:  # uvicorn exits 1 when it cannot bind (it has logged why)
        if exit.code:
            raise OSError(f"Could not serve on {host}:{port} (is the port in use?).") from None
    finally:
        app.state.studio.close()
