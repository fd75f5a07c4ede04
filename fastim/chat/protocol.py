"""The chat protocol spoken over `/chat`: what clients send, what the server answers.

Sans-I/O, like the WebSocket core: text in, a validated command or a `ChatError` out;
server frames are encoded here once, so the same bytes go to every recipient.
docs/chat-protocol.md is the reference for every field and command.

fastIM's JSON fields stay (`id, userid, cmd, dstid, media, content, pic, url, memo,
amount`); fastim adds `cid` (the client's id for a message, used for acks and safe
retries), `ts` (server time in ms) and the commands below 10 and above 11.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from enum import IntEnum
from typing import Any


class Cmd(IntEnum):
    HEARTBEAT = 0  # fastIM: keeps the connection alive; answered with a heartbeat
    ACK = 1  # server -> sender: the message is stored, here is its server id
    ERROR = 2  # server -> client: a command was refused, with the reason
    SINGLE = 10  # fastIM: a 1:1 message to user `dstid`
    GROUP = 11  # fastIM: a message to group `dstid`
    SYNC = 20  # client -> server: send me what I missed since server id `since`
    SYNC_RESULT = 21  # server -> client: one page of missed messages
    READ = 30  # client -> server: I have read conversation (kind, dstid) up to `upto`
    RECEIPT = 31  # server -> others: user `userid` has read (kind, dstid) up to `upto`
    TYPING = 40  # both ways, never stored
    PRESENCE = 50  # server -> client: user `userid` came online / went offline
    CONTACT = 70  # server -> client: a friend request came, a friendship began or ended
    # 60-63 are kept for the message lifecycle (edit, recall, reaction, delete for me) and
    # 71 for group notices (join requests, roles, removal): docs/chat-protocol.md.


class Media(IntEnum):
    TEXT = 1  # fastIM: `content` is the text
    VOICE = 3  # fastIM: a voice recording at `url`, `amount` seconds long (server's figure)
    IMAGE = 4  # fastIM: an image or sticker at `url` (thumbnail at `pic`)
    FILE = 5  # fastim's own: a file at `url`, `memo` its name, `amount` its size in bytes


CONVERSATION_KINDS = (Cmd.SINGLE, Cmd.GROUP)
MEDIA_VALUES = frozenset(int(m) for m in Media)
_MEDIA_NAMES = {Media.TEXT: "a text", Media.VOICE: "a voice", Media.IMAGE: "an image",
                Media.FILE: "a file"}


@dataclass(frozen=True)
class ChatLimits:
    """Bounds on what one client command may carry (all configurable)."""

    max_text: int = 4000  # characters of `content`
    max_memo: int = 500
    max_url: int = 300
    max_cid: int = 64
    max_sync_page: int = 200


class ChatError(Exception):
    """A command the server refuses: sent back as an ERROR frame; nothing is stored."""

    def __init__(self, reason: str, message: str, cid: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason  # a stable machine-readable word, e.g. "not_friend"
        self.message = message
        self.cid = cid

    def frame(self) -> str:
        return encode({"cmd": Cmd.ERROR, "error": self.reason, "msg": self.message,
                       "cid": self.cid})


@dataclass(frozen=True)
class ChatMessage:
    """A 1:1 or group message as the client sent it, validated (sender not yet known)."""

    cmd: Cmd
    dstid: int
    media: Media
    content: str
    pic: str
    url: str
    memo: str
    amount: int
    cid: str | None


@dataclass(frozen=True)
class Sync:
    since: int
    limit: int


@dataclass(frozen=True)
class Read:
    kind: Cmd
    dstid: int
    upto: int


@dataclass(frozen=True)
class Typing:
    kind: Cmd
    dstid: int


@dataclass(frozen=True)
class Heartbeat:
    pass


Command = ChatMessage | Sync | Read | Typing | Heartbeat

# Only this server's own files may be linked from a message: uploads under /resource/,
# sticker packs under /asset/ and files under /attach/file/. No scheme, no host, no `..`, no query: nothing that
# could run script (`javascript:`) or leak readers to a third party (tracking pixels).
# This is the shape only; the hub then checks that the upload or sticker exists
# (fastim/media/links.py).
_LOCAL_PREFIXES = ("/resource/", "/asset/", "/attach/file/")
_NOT_PATH = re.compile(r"[^A-Za-z0-9_\-./]")
_FASTIM_STICKERS = "/asset/plugins/"


def _url(value: Any, field: str, limits: ChatLimits, cid: str | None) -> str:
    text = _str(value, field, limits.max_url, cid)
    if not text:
        return text
    # Each refusal says what is really wrong: "must be under /asset/" for a path that is
    # under /asset/ but has `//` in it sent people looking in the wrong place.
    if not text.startswith(_LOCAL_PREFIXES):
        problem = ("must be a path on this server under /resource/ (uploads), /asset/ "
                   "(stickers) or /attach/file/ (files)")
    elif (bad := _NOT_PATH.search(text)) is not None:
        problem = (f"holds {bad.group()!r}: only letters, digits, '_', '-', '.' and '/' "
                   "(no query, space or escape)")
    elif "//" in text and not text.startswith(_FASTIM_STICKERS):
        # fastIM's pages wrote its stickers as /asset/plugins/doutu//emoj/2.gif: that form
        # is kept (fastim/media/links.py checks the file exists); elsewhere `//` is a slip.
        problem = "has an empty path segment ('//')"
    elif ".." in text:
        problem = "holds '..'"
    else:
        return text
    raise ChatError("bad_url", f"{field} {problem}", cid)


def _str(value: Any, field: str, limit: int, cid: str | None) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ChatError("bad_field", f"{field} must be a string", cid)
    if len(value) > limit:
        raise ChatError("too_long", f"{field} is longer than {limit} characters", cid)
    if not _storable(value):
        raise ChatError("bad_field", f"{field} is not valid Unicode", cid)
    return value


def _storable(text: str) -> bool:
    """False for text with lone surrogates: JSON's ``"\\ud800"`` escape can carry them
    past the frame's UTF-8 check (RFC 8259 §8.2), and neither database can store them, so
    one such message would fail its whole group-commit batch."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _int(value: Any, field: str, cid: str | None, *, default: int | None = None,
         minimum: int = 0) -> int:
    if value is None and default is not None:
        return default
    # bool is an int in Python but never a valid id or amount on the wire.
    if isinstance(value, bool) or not isinstance(value, int):
        # fastIM's clients sent ids as strings of digits; accept those too. ASCII digits
        # only: str.isdigit() is also true for "²" (which int() refuses) and for
        # full-width "１２" (which int() would take as 12).
        if (isinstance(value, str) and value.isascii() and value.isdigit()
                and len(value) <= 19):
            value = int(value)
        else:
            raise ChatError("bad_field", f"{field} must be an integer", cid)
    number: int = value
    if number < minimum or number > 2**63 - 1:
        raise ChatError("bad_field", f"{field} is out of range", cid)
    return number


def _cid(value: Any, limits: ChatLimits) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ChatError("bad_field", "cid must be a string or an integer")
    cid = str(value)
    if len(cid) > limits.max_cid:
        raise ChatError("too_long", f"cid is longer than {limits.max_cid} characters")
    if not _storable(cid):
        raise ChatError("bad_field", "cid is not valid Unicode")
    return cid


def _kind(value: Any, cid: str | None) -> Cmd:
    kind = _int(value, "kind", cid)
    if kind not in CONVERSATION_KINDS:
        raise ChatError("bad_field", "kind must be 10 (1:1) or 11 (group)", cid)
    return Cmd(kind)


#: Deepest nesting of JSON arrays and objects a command may have. A command is one flat
#: object; this leaves room for fields a newer client adds, and refuses ``[[[[…`` before
#: json.loads recurses into it (30,000 of them raised RecursionError).
MAX_DEPTH = 32

# A JSON string (its closing quote optional, so that an unclosed one is one match and
# the scan stays linear), and a run of characters that are not brackets.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")


def _too_deep(text: str | bytes) -> bool:
    """Whether the arrays and objects of `text` nest deeper than MAX_DEPTH, or its
    brackets do not pair up (then it is not JSON either). Nearly every command has fewer
    brackets than that and is not scanned; the scan is a few passes of C string work,
    each taking away the innermost level, never a Python loop over the input."""
    if isinstance(text, bytes):
        text = text.decode("latin-1")  # only the ASCII brackets and quotes matter
    if text.count("[") + text.count("{") <= MAX_DEPTH:
        return False
    brackets = _NOT_BRACKETS.sub("", _JSON_STRING.sub("", text))
    for _ in range(MAX_DEPTH):
        inner = brackets.replace("[]", "").replace("{}", "")
        if not inner:
            return False
        if len(inner) == len(brackets):
            return True  # no pair left to take away: they do not pair up
        brackets = inner
    return True


def parse(text: str | bytes, limits: ChatLimits = ChatLimits()) -> Command:
    """Validate one client frame; raise ChatError naming what is wrong.

    Every refusal is a ChatError (the hub counts the malformed ones, ``bad_json``,
    ``bad_field``, ``unknown_cmd`` and ``unknown_media``, as strikes); no input makes
    it raise anything else."""
    if _too_deep(text):
        raise ChatError("bad_json", f"the message is not valid JSON or nests deeper than "
                                    f"{MAX_DEPTH} levels")
    try:
        data = json.loads(text)
    except (ValueError, UnicodeDecodeError, RecursionError):
        # ValueError also covers an integer literal beyond Python's digit limit.
        raise ChatError("bad_json", "the message is not valid JSON") from None
    if not isinstance(data, dict):
        raise ChatError("bad_json", "the message must be a JSON object")
    cid = _cid(data.get("cid"), limits)
    cmd = _int(data.get("cmd"), "cmd", cid)
    if cmd == Cmd.HEARTBEAT:
        return Heartbeat()
    if cmd in CONVERSATION_KINDS:
        return _parse_message(Cmd(cmd), data, cid, limits)
    if cmd == Cmd.SYNC:
        since = _int(data.get("since"), "since", cid, default=0)
        limit = _int(data.get("limit"), "limit", cid, default=limits.max_sync_page, minimum=1)
        return Sync(since=since, limit=min(limit, limits.max_sync_page))
    if cmd == Cmd.READ:
        return Read(kind=_kind(data.get("kind"), cid),
                    dstid=_int(data.get("dstid"), "dstid", cid, minimum=1),
                    upto=_int(data.get("upto"), "upto", cid))
    if cmd == Cmd.TYPING:
        return Typing(kind=_kind(data.get("kind"), cid),
                      dstid=_int(data.get("dstid"), "dstid", cid, minimum=1))
    raise ChatError("unknown_cmd", f"unknown cmd {cmd}", cid)


def _parse_message(cmd: Cmd, data: dict[str, Any], cid: str | None,
                   limits: ChatLimits) -> ChatMessage:
    dstid = _int(data.get("dstid"), "dstid", cid, minimum=1)
    media_value = _int(data.get("media"), "media", cid, default=Media.TEXT)
    if media_value not in MEDIA_VALUES:
        raise ChatError("unknown_media", f"unknown media {media_value}", cid)
    media = Media(media_value)
    content = _str(data.get("content"), "content", limits.max_text, cid)
    url = _url(data.get("url"), "url", limits, cid)
    pic = _url(data.get("pic"), "pic", limits, cid)
    if media == Media.TEXT and not content.strip():
        raise ChatError("empty", "a text message needs content", cid)
    if media != Media.TEXT and not url:
        raise ChatError("bad_url", f"{_MEDIA_NAMES[media]} message needs a url", cid)
    return ChatMessage(
        cmd=cmd, dstid=dstid, media=media, content=content, pic=pic, url=url,
        memo=_str(data.get("memo"), "memo", limits.max_memo, cid),
        amount=_int(data.get("amount"), "amount", cid, default=0),
        cid=cid,
    )


def encode(payload: dict[str, Any]) -> str:
    """Compact JSON, non-ASCII kept as is (smaller frames for CJK and emoji)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
