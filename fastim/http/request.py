"""The `Request` a handler receives: head, body already read, and lazy decoders."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

from .body import UploadedFile, parse_content_type, parse_cookies, parse_urlencoded
from .errors import HTTPError
from .headers import Headers


class State(dict[str, Any]):
    """A dict whose keys are also attributes: ``request.state.user = u``."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self[name] = value

    def __delattr__(self, name: str) -> None:
        try:
            del self[name]
        except KeyError:
            raise AttributeError(name) from None


def split_target(target: str) -> tuple[str, str]:
    """Split a request-target into its raw (still percent-encoded) path and query."""
    if target[0] != "/":
        if target == "*":
            return "*", ""
        # absolute-form (RFC 9112 §3.2.2): drop scheme and authority.
        after_scheme = target.find("//") + 2
        slash = target.find("/", after_scheme)
        question = target.find("?", after_scheme)
        if slash < 0 or (0 <= question < slash):
            target = "/" + (target[question:] if question >= 0 else "")
        else:
            target = target[slash:]
    path, _, query = target.partition("?")
    path = path.partition("#")[0]
    return path, query


class Request:
    """One HTTP request, with its body fully received.

    Attributes: `method`, `target` (as sent), `path` (percent-decoded), `raw_path`,
    `query_string`, `http_version`, `headers` (a case-insensitive `Headers`), `body`
    (bytes; empty for multipart, whose parts are in `form()` and `files`),
    `path_params`, `remote_addr`, `scheme`, `state` (free for middleware, e.g. the user).

    `remote_addr` is the client's IP address and `scheme` ("http" or "https") how it
    reached us: the TCP peer and the connection's, or, when the peer is a trusted proxy
    (`Server(trusted_proxies=...)`), what the proxy's forwarding fields say.
    """

    __slots__ = (
        "method", "target", "http_version", "headers", "body", "raw_path",
        "query_string", "path_params", "remote_addr", "scheme", "state", "files", "app",
        "_path", "_query", "_cookies", "_form_fields", "_content_type",
    )

    def __init__(
        self,
        method: str,
        target: str,
        headers: Headers,
        body: bytes = b"",
        *,
        http_version: str = "1.1",
        remote_addr: str = "",
        scheme: str = "http",
        path_params: dict[str, str] | None = None,
        form_fields: dict[str, list[str]] | None = None,
        files: dict[str, list[UploadedFile]] | None = None,
        app: Any = None,
    ) -> None:
        self.method = method
        self.target = target
        self.http_version = http_version
        self.headers = headers
        self.body = body
        self.raw_path, self.query_string = split_target(target)
        self.path_params: dict[str, str] = path_params if path_params is not None else {}
        self.remote_addr = remote_addr
        self.scheme = scheme
        self.state = State()
        #: File parts of a multipart body, by field name.
        self.files: dict[str, list[UploadedFile]] = files if files is not None else {}
        #: The application object the router belongs to (None outside an app).
        self.app = app
        self._path: str | None = None
        self._query: dict[str, list[str]] | None = None
        self._cookies: dict[str, str] | None = None
        self._form_fields = form_fields
        self._content_type: tuple[str, dict[str, str]] | None = None

    @property
    def path(self) -> str:
        """The percent-decoded path (400 if it decodes to invalid UTF-8)."""
        if self._path is None:
            if "%" not in self.raw_path:
                self._path = self.raw_path
            else:
                try:
                    self._path = unquote(self.raw_path, errors="strict")
                except UnicodeDecodeError as exc:
                    raise HTTPError(400, "path is not valid UTF-8") from exc
        return self._path

    @property
    def query(self) -> dict[str, list[str]]:
        """The query string's parameters; every value of a repeated name is kept."""
        if self._query is None:
            self._query = parse_urlencoded(self.query_string) if self.query_string else {}
        return self._query

    @property
    def cookies(self) -> dict[str, str]:
        """Cookies sent in the Cookie fields."""
        if self._cookies is None:
            self._cookies = parse_cookies("; ".join(self.headers.get_all("cookie")))
        return self._cookies

    @property
    def content_type(self) -> str:
        """The lower-cased media type of the body ("" if none was given)."""
        return self._parsed_content_type()[0]

    def _parsed_content_type(self) -> tuple[str, dict[str, str]]:
        if self._content_type is None:
            self._content_type = parse_content_type(self.headers.get("content-type"))
        return self._content_type

    def file(self, name: str) -> UploadedFile | None:
        """The first uploaded file of field `name`, or None."""
        files = self.files.get(name)
        return files[0] if files else None

    def json(self) -> Any:
        """The body decoded as JSON: 415 if it is not JSON, 400 if it is malformed."""
        media_type = self.content_type
        if media_type != "application/json" and not media_type.endswith("+json"):
            raise HTTPError(415, "expected an application/json body")
        if not self.body:
            raise HTTPError(400, "empty JSON body")
        try:
            return json.loads(self.body)
        except (ValueError, RecursionError) as exc:
            raise HTTPError(400, "malformed JSON body") from exc

    def form(self) -> dict[str, str]:
        """Form fields of an urlencoded or multipart body (first value of each name).

        415 for another body type; an empty body without a type is an empty form.
        """
        return {name: values[0] for name, values in self._form_lists().items()}

    def _form_lists(self) -> dict[str, list[str]]:
        if self._form_fields is not None:
            return self._form_fields
        media_type = self.content_type
        if media_type == "application/x-www-form-urlencoded":
            try:
                text = self.body.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise HTTPError(400, "form body is not valid UTF-8") from exc
            self._form_fields = parse_urlencoded(text)
        elif not self.body and media_type in ("", "multipart/form-data"):
            self._form_fields = {}
        else:
            raise HTTPError(415, "expected a form body")
        return self._form_fields

    def values(self) -> dict[str, Any]:
        """Query parameters and body fields merged (the body wins on a name clash).

        The body may be a JSON object, an urlencoded form or a multipart form; an empty
        body adds nothing; any other body is a 415, a JSON non-object a 400.
        """
        merged: dict[str, Any] = {name: values[0] for name, values in self.query.items()}
        if not self.body and self._form_fields is None:
            return merged
        media_type = self.content_type
        if media_type == "application/json" or media_type.endswith("+json"):
            data = self.json()
            if not isinstance(data, dict):
                raise HTTPError(400, "expected a JSON object")
            merged.update(data)
        else:
            merged.update(self.form())
        return merged

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.target}>"
