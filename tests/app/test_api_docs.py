"""docs/api.md is true: every request example is replayed, in order, against a fresh
server on each backend, and the reply must match the one the page shows.

Server-made values are matched by meaning: an id the page shows as 2 must be, in every
later example, the id the server gave the user it was first shown for (the group, or the
message, in their own namespaces); a token likewise; timestamps must be positive
integers. Everything else must be equal.

A ` ```chat ` block is what a client sends over the `/chat` WebSocket (as the token on its
first line): the test sends each command and waits for each message's ack, so the
examples after it see those messages stored.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

from tests.chat_support import ChatClient
from tests.store_fixtures import ApiServer, Reply

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
HANDLERS = Path(__file__).resolve().parents[2] / "fastim" / "handlers"
BLOCK = re.compile(r"```http\n(.*?)\n```", re.S)
STEP = re.compile(r"```(http|chat)\n(.*?)\n```", re.S)
TIMESTAMPS = {"createat", "expires", "joined", "ts"}
ID_FIELDS = {"id", "dstid", "ownerid", "userid", "before", "upto", "requestid"}
MESSAGE_IDS = {"before", "upto", "last"}  # fields that name a chat message by its id
#: Paths whose `dstid` names a user (elsewhere it names a group).
USER_PATHS = {"/user/find", "/contact/addfriend", "/contact/unfriend", "/contact/block",
              "/contact/unblock"}
#: Paths whose `cmd` + `dstid` name a conversation (a user for cmd 10, else a group).
CONVERSATION_PATHS = {"/contact/mute", "/contact/unmute"}


@dataclass
class Example:
    request: str
    response: str
    index: int

    @property
    def title(self) -> str:
        return f"example {self.index}: {self.request.splitlines()[0]}"


def examples() -> list[Example]:
    blocks = BLOCK.findall(DOC.read_text(encoding="utf-8"))
    assert len(blocks) % 2 == 0, "every request block needs a response block after it"
    pairs = [Example(blocks[i], blocks[i + 1], i // 2 + 1) for i in range(0, len(blocks), 2)]
    for ex in pairs:
        assert not ex.request.startswith("HTTP/"), ex.title
        assert ex.response.startswith("HTTP/1.1 "), ex.title
    return pairs


@dataclass
class ChatStep:
    """Commands one client sends over /chat, one JSON object a line, after its token."""

    token: str
    commands: list[dict[str, Any]]


def steps() -> list[Example | ChatStep]:
    """The page's examples and chat blocks, in the order they appear."""
    found: list[Example | ChatStep] = []
    http: list[str] = []
    for kind, block in STEP.findall(DOC.read_text(encoding="utf-8")):
        if kind == "chat":
            assert not http, "a chat block between a request and its response"
            token, *lines = block.split("\n")
            found.append(ChatStep(token.removeprefix("Bearer "),
                                  [json.loads(line) for line in lines if line]))
        elif http:
            found.append(Example(http.pop(), block, len(found) + 1))
        else:
            http.append(block)
    assert not http, "every request block needs a response block after it"
    return found


def _head_and_body(block: str) -> tuple[list[str], str]:
    head, _, body = block.partition("\n\n")
    return head.split("\n"), body.strip()


@dataclass
class Meanings:
    """What the page's made-up values stand for on this server."""

    ids: dict[tuple[str, int], int] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def id(self, namespace: str, shown: int, real: Any, where: str) -> None:
        assert isinstance(real, int) and real > 0, where
        key = (namespace, shown)
        if key in self.ids:
            assert self.ids[key] == real, f"{where}: {namespace} {shown} is {self.ids[key]}"
        else:
            assert real not in {v for (ns, _), v in self.ids.items() if ns == namespace}, where
            self.ids[key] = real

    def token(self, shown: str, real: Any, where: str) -> None:
        assert isinstance(real, str) and len(real) == len(shown), where
        assert self.tokens.setdefault(shown, real) == real, where

    def real_token(self, shown: str) -> str:
        assert shown in self.tokens, f"token {shown[:8]}... is used before a login showed it"
        return self.tokens[shown]

    def real_id(self, namespace: str, shown: Any) -> Any:
        try:
            return self.ids.get((namespace, int(shown)), shown)
        except (TypeError, ValueError):
            return shown


def _namespace(path: str, key: str, values: dict[str, Any]) -> str:
    if key in MESSAGE_IDS:
        return "message"
    if key == "requestid":
        return "request"
    if key in ("ownerid", "userid") or path in USER_PATHS:
        return "user"
    # A chat conversation's `dstid` is a user for 1:1 (cmd or kind 10), else a group.
    if (path.startswith("/chat") or path in CONVERSATION_PATHS) and "10" in (str(values.get("cmd")), str(values.get("kind"))):
        return "user"
    return "community"


def _substitute(values: dict[str, Any], path: str, meanings: Meanings) -> dict[str, Any]:
    return {
        k: (type(v)(meanings.real_id(_namespace(path, k, values), v)) if k in ID_FIELDS
            else v)
        for k, v in values.items()
    }


def _match(shown: Any, real: Any, meanings: Meanings, where: str) -> None:
    if isinstance(shown, dict):
        assert isinstance(real, dict) and set(real) == set(shown), (where, shown, real)
        for key, value in shown.items():
            here = f"{where}.{key}"
            if key == "token":
                meanings.token(value, real[key], here)
            elif key == "key":  # the server's VAPID public key: its own on each server
                assert isinstance(real[key], str) and len(real[key]) == len(value), here
            elif key in TIMESTAMPS:
                assert isinstance(real[key], int) and real[key] > 0, here
            elif key == "id":
                namespace = ("message" if "cmd" in shown
                             else "community" if "ownerid" in shown
                             else "request" if "direction" in shown else "user")
                meanings.id(namespace, value, real[key], here)
            elif key in ("ownerid", "userid"):
                meanings.id("user", value, real[key], here)
            elif key in MESSAGE_IDS:
                meanings.id("message", value, real[key], here)
            elif key == "dstid":
                meanings.id(_namespace("/chat", key, shown), value, real[key], here)
            else:
                _match(value, real[key], meanings, here)
    elif isinstance(shown, list):
        assert isinstance(real, list) and len(real) == len(shown), (where, shown, real)
        for i, (a, b) in enumerate(zip(shown, real, strict=True)):
            _match(a, b, meanings, f"{where}[{i}]")
    else:
        assert shown == real, (where, shown, real)


def _send(api: ApiServer, ex: Example, meanings: Meanings) -> Reply:
    head, body = _head_and_body(ex.request)
    method, target, version = head[0].split(" ")
    assert version == "HTTP/1.1", ex.title
    parts = urlsplit(target)
    path = parts.path
    if parts.query:
        query = _substitute(dict(parse_qsl(parts.query)), path, meanings)
        target = f"{path}?{urlencode(query)}"
    headers: dict[str, str] = {}
    for line in head[1:]:
        name, _, value = line.partition(": ")
        if name.lower() == "authorization":
            value = "Bearer " + meanings.real_token(value.removeprefix("Bearer "))
        elif name.lower() == "cookie":
            cookie_name, _, shown = value.partition("=")
            value = f"{cookie_name}={meanings.real_token(shown)}"
        headers[name] = value
    data: bytes | None = None
    if body:
        content_type = headers.get("Content-Type", "")
        if content_type == "application/json":
            data = json.dumps(_substitute(json.loads(body), path, meanings)).encode()
        else:
            assert content_type == "application/x-www-form-urlencoded", ex.title
            data = urlencode(_substitute(dict(parse_qsl(body)), path, meanings)).encode()
    if path == "/chat/search":
        # The index follows the messages about a second behind (docs/store.md "Search").
        api.call(api.app.services.search.indexer.catch_up())
    return api.request(method, target, body=data, headers=headers)


def _check(reply: Reply, ex: Example, meanings: Meanings) -> None:
    head, body = _head_and_body(ex.response)
    status = int(head[0].split(" ")[1])
    assert reply.status == status, (ex.title, reply.status, reply.body)
    _match(json.loads(body), reply.json, meanings, ex.title)
    for line in head[1:]:
        name, _, shown = line.partition(": ")
        real = reply.header(name)
        if name.lower() == "set-cookie":
            for doc_token, real_token in meanings.tokens.items():
                shown = shown.replace(doc_token, real_token)
        assert real == shown, (ex.title, name, real, shown)


def _chat(api: ApiServer, step: ChatStep, meanings: Meanings) -> None:
    """Send a chat block's commands as its client; each message must be acked."""

    async def send() -> None:
        client = await ChatClient.open(api, meanings.real_token(step.token))
        for command in step.commands:
            await client.send(**_substitute(command, "/chat", meanings))
            if command.get("cmd") in (10, 11):
                cid = command["cid"]
                ack = await client.expect(lambda f, cid=cid: f.get("cmd") in (1, 2)
                                          and f.get("cid") == cid)
                assert ack["cmd"] == 1, ack
        await client.no_more_messages()  # the heartbeat's answer: every command is done
        await client.close()

    asyncio.run(send())


def test_the_page_has_examples() -> None:
    assert len(examples()) >= 25


def test_every_endpoint_has_an_example() -> None:
    routes = set()
    for module in ("user.py", "contact.py", "chat.py"):
        routes |= set(re.findall(r'"(/(?:user|contact|chat)/[a-z]+)"',
                                 (HANDLERS / module).read_text()))
    shown = {urlsplit(ex.request.split(" ")[1]).path for ex in examples()}
    assert routes and routes <= shown, routes - shown


def test_every_example_is_what_the_server_does(api: ApiServer) -> None:
    meanings = Meanings()
    for step in steps():
        if isinstance(step, ChatStep):
            _chat(api, step, meanings)
        else:
            _check(_send(api, step, meanings), step, meanings)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_wrong_example_would_be_caught(api: ApiServer) -> None:
    """The checker itself: a reply that differs from the page fails it."""
    meanings = Meanings()
    first = examples()[0]
    reply = _send(api, first, meanings)
    wrong = Example(first.request, first.response.replace("Alice 🌸", "Alice"), 0)
    with pytest.raises(AssertionError):
        _check(reply, wrong, Meanings())
