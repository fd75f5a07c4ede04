"""fastim.http: a hand-written HTTP/1.1 server layer on asyncio.

* `parser` - the sans-I/O request parser (bytes in, events out);
* `server` - the asyncio protocol and `Server` (timeouts, keep-alive, shutdown);
* `proxy` - the client's address and scheme behind a trusted reverse proxy;
* `router`, `request`, `response`, `body`, `static` - what handlers see.

See docs/http.md for the API, the limits and their defaults.
"""

from .body import UploadedFile
from .errors import HTTPError
from .headers import Headers
from .parser import RequestParser
from .proxy import TrustedProxies
from .request import Request, State
from .response import (
    Response,
    error_response,
    html_response,
    json_response,
    list_response,
    redirect,
    text_response,
)
from .router import Router
from .server import Limits, Server, serve
from .static import StaticFiles, tree_version

__all__ = [
    "HTTPError",
    "Headers",
    "Limits",
    "Request",
    "RequestParser",
    "Response",
    "Router",
    "Server",
    "State",
    "StaticFiles",
    "tree_version",
    "TrustedProxies",
    "UploadedFile",
    "error_response",
    "html_response",
    "json_response",
    "list_response",
    "redirect",
    "serve",
    "text_response",
]
