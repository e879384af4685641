"""`mdnrnn serve`: draw and the model continues, perform and the model answers, in the browser.

A small ASGI app (Starlette, served by uvicorn) with two pages and one WebSocket:

- the drawing page (stroke models): draw with mouse, pen or touch; on pen-up the server
  primes a `Generator` with the strokes and streams the continuation point by point;
- the performance page (touch models): tap and swipe; after a pause the model answers for
  about as long as you played, drawn and heard (the MIDI exporter's pitch mapping).

Every WebSocket is a session with its own generators. The protocol is in
`mdnrnn.studio.protocol` and docs/serve.md.

Example:

    from mdnrnn.studio import load_entries, serve
    serve(load_entries(["kanji", "touch"]), port=8000, on_ready=print)
"""

from mdnrnn.studio.protocol import Limits, ProtocolError

__all__ = ["Limits", "ProtocolError", "create_app", "load_entries", "serve", "ModelEntry"]


def __getattr__(name):  # the app and the models load Starlette and TensorFlow on first use
    if name in ("create_app", "serve"):
        from mdnrnn.studio import app

        return getattr(app, name)
    if name in ("load_entries", "ModelEntry"):
        from mdnrnn.studio import session

        return getattr(session, name)
    raise AttributeError(f"module 'mdnrnn.studio' has no attribute {name!r}")
