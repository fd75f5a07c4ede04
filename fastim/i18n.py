"""The client's languages: one table of UI strings per language, shared with the browser.

The tables are `asset/i18n/<language>.json`: flat JSON objects from a key (`area.name`)
to a string with `{name}` placeholders. The server renders the pages' own text from them
(jinja2's `t()`), and `asset/js/i18n.js` reads the very same files for the script's text,
so a string has one home per language. The API itself stays in English: its error
`msg` is for developers and logs, and the client translates the ones it shows
(docs/client.md, "Languages").

Which language a page gets: the visitor's remembered choice (the `fastim_lang` cookie,
set by the switch on the login, register and profile pages), else the first language of
`Accept-Language` (RFC 9110 §12.5.4) that we have, else English.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path

#: The languages we ship, as BCP 47 tags (also the tables' file names); the first is the
#: fallback.
LANGUAGES: tuple[str, ...] = ("en", "zh-CN")
DEFAULT = LANGUAGES[0]

#: The cookie that remembers a visitor's choice (the client keeps it in localStorage too).
COOKIE = "fastim_lang"

_PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


def match(tag: str) -> str | None:
    """The language we ship for a BCP 47 tag, or None: every `zh` is 简体中文 (the one
    Chinese we have; a reader of 繁體 reads it more easily than English), every `en`
    English."""
    primary = tag.strip().lower().split("-", 1)[0]
    if primary == "zh":
        return "zh-CN"
    if primary == "en":
        return "en"
    return None


def from_accept_language(header: str | None) -> str | None:
    """The best of our languages for an `Accept-Language` value (RFC 9110 §12.5.4: by
    weight, then by order; q=0 means "not this one")."""
    if not header:
        return None
    ranked: list[tuple[float, int, str]] = []
    for order, part in enumerate(header.split(",")[:32]):  # bounded, whatever is sent
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        language = match(tag) if tag.strip() != "*" else None
        if language is not None and weight > 0:
            ranked.append((-weight, order, language))
    return min(ranked)[2] if ranked else None


def negotiate(cookie: str | None, accept_language: str | None) -> str:
    """The page's language: the remembered choice, else the browser's, else English."""
    if cookie in LANGUAGES:
        return cookie
    return from_accept_language(accept_language) or DEFAULT


def placeholders(text: str) -> set[str]:
    """The `{name}` placeholders of a string."""
    return set(_PLACEHOLDER.findall(text))


class Tables:
    """Every language's table, read once at start-up from `asset/i18n/`."""

    def __init__(self, directory: Path) -> None:
        self.tables: dict[str, dict[str, str]] = {}
        for language in LANGUAGES:
            with open(directory / f"{language}.json", encoding="utf-8") as f:
                table = json.load(f)
            if not isinstance(table, dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in table.items()):
                raise ValueError(f"{language}.json must be an object of strings")
            self.tables[language] = table

    def text(self, language: str, key: str, params: Mapping[str, object] | None = None) -> str:
        """The string for `key`, placeholders filled. A key missing from a table is a bug
        the key test catches; at run time it falls back to English, then to the key."""
        table = self.tables.get(language) or self.tables[DEFAULT]
        template = table.get(key, self.tables[DEFAULT].get(key, key))
        if not params:
            return template
        return _PLACEHOLDER.sub(
            lambda m: str(params[m.group(1)]) if m.group(1) in params else m.group(0), template)

    def translator(self, language: str) -> Callable[..., str]:
        """`t(key, **params)` in `language`, as the templates call it (a closure)."""
        def t(key: str, **params: object) -> str:
            return self.text(language, key, params)
        return t
