"""Request bodies without a Content-Length (chunked), read whole before Flask sees them.

gunicorn decodes chunked framing lazily, while the application reads: a malformed
chunk-size line then surfaces as gunicorn's own exception in the middle of a view (a 500),
and werkzeug silently truncates a chunked body at MAX_CONTENT_LENGTH. Buffering such a
body here, bounded by the limit, turns both into client errors: 400 for bad framing, 413
for too much. Bodies are small (16 KiB by default), so buffering costs nothing.
"""
from __future__ import annotations

import io
import logging
from typing import Any
from typing import BinaryIO
from typing import Callable
from typing import Iterable

from flask import Flask
from flask import request
from werkzeug.exceptions import BadRequest
from werkzeug.exceptions import RequestEntityTooLarge

log = logging.getLogger(__name__)
_ERROR = "baton.body_error"


class ChunkedBodyBuffer:
    """WSGI middleware: read a body that has no Content-Length, up to `limit` bytes."""

    def __init__(self, app: Callable, limit: int) -> None:
        self.app, self.limit = app, limit

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        chunked = "chunked" in environ.get("HTTP_TRANSFER_ENCODING", "").lower()
        if not environ.get("CONTENT_LENGTH") and (chunked or environ.get("wsgi.input_terminated")):
            body, error = self._read(environ["wsgi.input"])
            environ[_ERROR] = error
            environ["wsgi.input"] = io.BytesIO(body)
            environ["CONTENT_LENGTH"] = str(len(body))
            environ.pop("HTTP_TRANSFER_ENCODING", None)
            environ.pop("wsgi.input_terminated", None)
        return self.app(environ, start_response)

    def _read(self, stream: BinaryIO) -> tuple[bytes, int | None]:
        chunks: list[bytes] = []
        size = 0
        try:
            while size <= self.limit:
                chunk = stream.read(min(65536, self.limit + 1 - size))
                if not chunk:
                    return b"".join(chunks), None
                chunks.append(chunk)
                size += len(chunk)
        except Exception as exc:  # the server's framing errors: every one is the client's
            log.info("malformed request body: %s", type(exc).__name__,
                     extra={"event": "bad_framing"})
            return b"", 400
        return b"", 413


def _refuse_bad_body() -> None:
    error = request.environ.get(_ERROR)
    if error == 400:
        raise BadRequest("The request body is malformed (chunked encoding).")
    if error == 413:
        raise RequestEntityTooLarge()


def init_framing(app: Flask) -> None:
    app.wsgi_app = ChunkedBodyBuffer(app.wsgi_app, app.config["MAX_CONTENT_LENGTH"])  # type: ignore[method-assign]
    app.before_request(_refuse_bad_body)
