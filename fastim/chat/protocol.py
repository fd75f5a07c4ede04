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
    EDIT = 60  # both ways: the sender changes a text message's content
    RECALL = 61  # both ways: a message is taken back (its text erased)
    REACT = 62  # both ways: a reaction is added to or taken from a message
    DELETE = 63  # both ways: a message is hidden from the user's own devices
    CONTACT = 70  # server -> client: a friend request came, a friendship began or ended
    GROUP_NOTICE = 71  # server -> client: a group's join, leave, removal, role, request


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
    max_mentions: int = 50  # user ids in one message's `mentions`
    max_held: int = 1000  # message ids in one sync's `held` (the server keeps 1,024)
    max_emoji: int = 16  # characters of one reaction


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
    reply_to: int | None = None  # the message this one answers (same conversation)
    # Group messages: the members called (user ids), or "all" (docs/chat-protocol.md).
    mentions: tuple[int, ...] | str | None = None


@dataclass(frozen=True)
class Change:
    """A change to a stored message: EDIT (`content`), RECALL, REACT (`emoji`, `on`) or
    DELETE (for me)."""

    cmd: Cmd
    id: int
    cid: str | None
    content: str = ""
    emoji: str = ""
    on: bool = True


@dataclass(frozen=True)
class Sync:
    since: int
    limit: int
    # The change log's cursor (docs/chat-protocol.md); None: the client does not sync
    # changes.
    changes_since: int | None = None
    # Message ids above `since` the client holds already ("The sync cursor"): the page
    # counts them for `next` but does not send them again.
    held: frozenset[int] = frozenset()


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


Command = ChatMessage | Change | Sync | Read | Typing | Heartbeat

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
        changes = data.get("changes_since")
        return Sync(since=since, limit=min(limit, limits.max_sync_page),
                    changes_since=None if changes is None
                    else _int(changes, "changes_since", cid),
                    held=_held(data.get("held"), cid, limits))
    if cmd in (Cmd.EDIT, Cmd.RECALL, Cmd.REACT, Cmd.DELETE):
        return _parse_change(Cmd(cmd), data, cid, limits)
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
    reply_to = data.get("reply_to")
    return ChatMessage(
        cmd=cmd, dstid=dstid, media=media, content=content, pic=pic, url=url,
        memo=_str(data.get("memo"), "memo", limits.max_memo, cid),
        amount=_int(data.get("amount"), "amount", cid, default=0),
        cid=cid,
        reply_to=None if reply_to in (None, 0, "") else _int(reply_to, "reply_to", cid,
                                                              minimum=1),
        mentions=_mentions(cmd, data.get("mentions"), cid, limits),
    )


def _mentions(cmd: Cmd, value: Any, cid: str | None,
              limits: ChatLimits) -> tuple[int, ...] | str | None:
    if value is None or value == []:
        return None
    if cmd != Cmd.GROUP:
        raise ChatError("bad_field", "mentions are for group messages", cid)
    if value == "all":
        return "all"
    if not isinstance(value, list):
        raise ChatError("bad_field", 'mentions must be a list of user ids or "all"', cid)
    if len(value) > limits.max_mentions:
        raise ChatError("too_long", f"at most {limits.max_mentions} mentions", cid)
    return tuple(sorted({_int(v, "mentions", cid, minimum=1) for v in value}))


def _held(value: Any, cid: str | None, limits: ChatLimits) -> frozenset[int]:
    if value is None:
        return frozenset()
    if not isinstance(value, list):
        raise ChatError("bad_field", "held must be a list of message ids", cid)
    if len(value) > limits.max_held:
        raise ChatError("too_long", f"at most {limits.max_held} held ids", cid)
    return frozenset(_int(v, "held", cid, minimum=1) for v in value)


def _emoji(value: Any, cid: str | None, limits: ChatLimits) -> str:
    """One emoji (or a short sequence of them: flags, skin tones, ZWJ families): no
    letters, digits, spaces or markup, so a reaction cannot carry a message."""
    emoji = _str(value, "emoji", limits.max_emoji, cid)
    if not emoji or emoji.isascii() or any(
            ch.isspace() or ch.isalnum() or ch in "<>&\"'" for ch in emoji):
        raise ChatError("bad_field", "emoji must be an emoji", cid)
    return emoji


def _parse_change(cmd: Cmd, data: dict[str, Any], cid: str | None,
                  limits: ChatLimits) -> Change:
    message_id = _int(data.get("id"), "id", cid, minimum=1)
    if cmd == Cmd.EDIT:
        content = _str(data.get("content"), "content", limits.max_text, cid)
        if not content.strip():
            raise ChatError("empty", "an edit needs content", cid)
        return Change(cmd=cmd, id=message_id, cid=cid, content=content)
    if cmd == Cmd.REACT:
        on = data.get("on", True)
        if not isinstance(on, bool):
            raise ChatError("bad_field", "on must be true or false", cid)
        return Change(cmd=cmd, id=message_id, cid=cid,
                      emoji=_emoji(data.get("emoji"), cid, limits), on=on)
    return Change(cmd=cmd, id=message_id, cid=cid)


def encode(payload: dict[str, Any]) -> str:
    """Compact JSON, non-ASCII kept as is (smaller frames for CJK and emoji)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
