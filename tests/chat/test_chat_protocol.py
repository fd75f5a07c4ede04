"""The /chat wire protocol: validation of every client command (docs/chat-protocol.md)."""

from __future__ import annotations

import asyncio
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastim.chat.protocol import (
    Change,
    ChatError,
    ChatLimits,
    ChatMessage,
    Cmd,
    Heartbeat,
    Media,
    Read,
    Sync,
    Typing,
    encode,
    parse,
)
from fastim.chat.ratelimit import TokenBucket
from fastim.ws import ConnectionClosed
from tests.chat_support import ChatClient
from tests.store_fixtures import ApiServer


def msg(**fields: object) -> str:
    base: dict[str, object] = {"cmd": 10, "dstid": 2, "media": 1, "content": "hi"}
    base.update(fields)
    return json.dumps(base)


DEFAULT_LIMITS = ChatLimits()


def reason(text: str | bytes, limits: ChatLimits = DEFAULT_LIMITS) -> str:
    with pytest.raises(ChatError) as exc:
        parse(text, limits)
    return exc.value.reason


def test_text_message_keeps_fastim_fields_and_ignores_userid() -> None:
    parsed = parse(msg(userid=999, cid="c1", memo="m", amount=3))
    assert parsed == ChatMessage(cmd=Cmd.SINGLE, dstid=2, media=Media.TEXT, content="hi",
                                 pic="", url="", memo="m", amount=3, cid="c1")


def test_ids_as_digit_strings_are_accepted_like_fastim_clients_sent_them() -> None:
    parsed = parse(msg(dstid="7", cmd="11"))
    assert isinstance(parsed, ChatMessage)
    assert (parsed.cmd, parsed.dstid) == (Cmd.GROUP, 7)


def test_sticker_and_image_urls_must_be_local() -> None:
    ok = parse(msg(media=4, content="", url="/asset/stickers/cats/01.svg",
                   pic="/resource/ab12.thumb.jpg"))
    assert isinstance(ok, ChatMessage) and ok.url.endswith("01.svg")
    for url in ["javascript:alert(1)", "https://tracker.example/p.gif", "//evil/x.png",
                "/resource/../etc/passwd", "/other/x.png", "/resource/a.png?x=1",
                "/resource/a b.png", "/asset//x.png"]:
        assert reason(msg(media=4, content="", url=url)) == "bad_url", url
    assert reason(msg(media=4, content="")) == "bad_url"


@pytest.mark.parametrize(("url", "words"), [
    ("/asset//x.png", "url has an empty path segment ('//')"),
    ("/resource/a//b.png", "url has an empty path segment ('//')"),
    ("/resource/../etc/passwd", "url holds '..'"),
    ("/resource/a.png?x=1", "url holds '?'"),
    ("/resource/a b.png", "url holds ' '"),
    ("/other/x.png", "url must be a path on this server under /resource/ (uploads), "
                     "/asset/ (stickers) or /attach/file/ (files)"),
    ("//evil/x.png", "url must be a path on this server"),
])
def test_a_bad_url_is_told_what_is_really_wrong(url: str, words: str) -> None:
    # "must be a path under /resource/ or /asset/" was the answer to /asset//x.png too.
    with pytest.raises(ChatError) as error:
        parse(msg(media=4, content="", url=url))
    assert error.value.reason == "bad_url" and words in error.value.message


@pytest.mark.parametrize(("text", "expected"), [
    ("not json", "bad_json"),
    (b"\xff\xfe", "bad_json"),
    ("[1, 2]", "bad_json"),
    ('"a string"', "bad_json"),
    ('{"cmd": 99}', "unknown_cmd"),
    ('{"cmd": "ten"}', "bad_field"),
    ('{"cmd": true}', "bad_field"),
    ('{"cmd": 10, "dstid": 2, "media": 2, "content": "x"}', "unknown_media"),
    ('{"cmd": 10, "dstid": 2, "media": 3, "content": "x"}', "bad_url"),
    ('{"cmd": 10, "dstid": 2, "media": 5, "memo": "a.pdf"}', "bad_url"),
    ('{"cmd": 10, "media": 1, "content": "x"}', "bad_field"),
    ('{"cmd": 10, "dstid": 0, "media": 1, "content": "x"}', "bad_field"),
    ('{"cmd": 10, "dstid": -5, "media": 1, "content": "x"}', "bad_field"),
    ('{"cmd": 10, "dstid": 1e3, "media": 1, "content": "x"}', "bad_field"),
    ('{"cmd": 10, "dstid": 99999999999999999999, "media": 1, "content": "x"}', "bad_field"),
    ('{"cmd": 10, "dstid": 2, "media": 1, "content": 5}', "bad_field"),
    ('{"cmd": 10, "dstid": 2, "media": 1, "content": "  "}', "empty"),
    ('{"cmd": 10, "dstid": 2, "media": 1, "content": "x", "cid": {"a": 1}}', "bad_field"),
    ('{"cmd": 30, "kind": 12, "dstid": 2, "upto": 1}', "bad_field"),
    # lone surrogates pass JSON and the frame's UTF-8 check but no database stores them
    ('{"cmd": 10, "dstid": 2, "media": 1, "content": "a\\ud800b"}', "bad_field"),
    ('{"cmd": 10, "dstid": 2, "media": 1, "content": "x", "memo": "\\udfff"}', "bad_field"),
    ('{"cmd": 10, "dstid": 2, "media": 1, "content": "x", "cid": "\\ud83d"}', "bad_field"),
])
def test_malformed_commands_are_refused_with_a_reason(text: str, expected: str) -> None:
    assert reason(text) == expected


def test_text_length_limit_counts_characters_not_bytes() -> None:
    limits = ChatLimits(max_text=5)
    assert isinstance(parse(msg(content="😀" * 5), limits), ChatMessage)
    assert reason(msg(content="😀" * 6), limits) == "too_long"


def test_error_frame_names_the_reason_and_echoes_the_cid() -> None:
    with pytest.raises(ChatError) as exc:
        parse(msg(cid="abc", media=9))
    frame = json.loads(exc.value.frame())
    assert frame == {"cmd": Cmd.ERROR, "error": "unknown_media", "msg": "unknown media 9",
                     "cid": "abc"}


def test_other_commands() -> None:
    assert parse('{"cmd": 0}') == Heartbeat()
    assert parse('{"cmd": 20, "since": 41}') == Sync(since=41, limit=200)
    assert parse('{"cmd": 20, "limit": 100000}') == Sync(since=0, limit=200)
    assert parse('{"cmd": 20, "since": 4, "held": [7, 5, 7]}') == Sync(
        since=4, limit=200, held=frozenset({5, 7}))
    with pytest.raises(ChatError) as too_many:
        parse('{"cmd": 20, "held": [' + ", ".join(["1"] * 1001) + "]}")
    assert too_many.value.reason == "too_long"
    assert parse('{"cmd": 30, "kind": 11, "dstid": 3, "upto": 9}') == Read(Cmd.GROUP, 3, 9)
    assert parse('{"cmd": 40, "kind": 10, "dstid": 3}') == Typing(Cmd.SINGLE, 3)


def test_encode_is_compact_and_keeps_unicode() -> None:
    assert encode({"content": "你好 😀", "id": 1}) == '{"content":"你好 😀","id":1}'


# What the hub counts as a strike towards closing with 1008 (fastim/chat/hub.py,
# Hub.receive): every refusal of malformed input must be one of these.
MALFORMED = {"bad_json", "bad_field", "unknown_cmd", "unknown_media"}


@pytest.mark.parametrize(("text", "expected"), [
    # str.isdigit() is true for these, int() refuses the first and reads the others
    ('{"cmd": "\u00b2"}', "bad_field"),
    ('{"cmd": 10, "dstid": "\uff11\uff12", "media": 1, "content": "x"}', "bad_field"),
    ('{"cmd": 10, "dstid": "\u0663", "media": 1, "content": "x"}', "bad_field"),
    ('{"cmd": 20, "since": "\u00b9\u00b2"}', "bad_field"),
    ('{"cmd": 20, "held": 5}', "bad_field"),
    ('{"cmd": 20, "held": [0]}', "bad_field"),
    ('{"cmd": 20, "held": ["x"]}', "bad_field"),
    ('{"cmd": 10, "dstid": 2, "media": 1, "content": "x", "amount": "\u2460"}', "bad_field"),
    # nesting: refused before json.loads recurses into it
    ("[" * 30000, "bad_json"),
    (b"[" * 30000, "bad_json"),
    ('{"cmd": 0, "x": ' + "[" * 33 + "]" * 33 + "}", "bad_json"),
    ('{"a": ' * 40 + "1" + "}" * 40, "bad_json"),
    ("{" * 30000, "bad_json"),
    # numbers far beyond 64 bits, as literals and as digit strings
    ('{"cmd": 1' + "0" * 5000 + "}", "bad_json"),  # beyond Python's int digit limit
    ('{"cmd": 1' + "0" * 100 + "}", "bad_field"),
    ('{"cmd": 10, "dstid": "1' + "0" * 100 + '", "media": 1, "content": "x"}', "bad_field"),
    ('{"cmd": 10, "dstid": 1e400, "media": 1, "content": "x"}', "bad_field"),
    ('{"cmd": 10, "dstid": NaN, "media": 1, "content": "x"}', "bad_field"),
])
def test_inputs_that_once_escaped_the_parser_are_malformed_commands(
        text: str | bytes, expected: str) -> None:
    assert reason(text) == expected
    assert expected in MALFORMED


def test_ascii_digit_strings_and_nesting_up_to_the_limit_are_still_accepted() -> None:
    assert parse('{"cmd": "0"}') == Heartbeat()
    assert parse(msg(dstid="12")).dstid == 12  # type: ignore[union-attr]
    assert parse('{"cmd": 0, "x": ' + "[" * 31 + "]" * 31 + "}") == Heartbeat()
    assert parse('{"cmd": 0, "x": "' + "[" * 1000 + '"}') == Heartbeat()  # text, not nesting
    assert parse('{"cmd": 0, "x": "\\\"' + "{" * 100 + '"}') == Heartbeat()


# Inputs shaped like the ones that escaped: digits of any script, deep nesting, numbers of
# any size, as field values and as whole messages.
_FIELDS = st.sampled_from(["cmd", "dstid", "media", "content", "url", "pic", "memo", "amount",
                           "cid", "since", "limit", "kind", "upto"])
_DIGITS = st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=25)
_HUGE = st.integers(min_value=-(10**400), max_value=10**400)


@st.composite
def _nested(draw: st.DrawFn) -> str:
    depth = draw(st.integers(min_value=0, max_value=5000))
    opening = draw(st.sampled_from(["[", "{", '{"a":', "[1,"]))
    inner = draw(st.sampled_from(["", "1", '{"cmd": 0}', '"x"']))
    closing = {"[": "]", "{": "}", '{"a":': "}", "[1,": "]"}[opening]
    return opening * depth + inner + closing * draw(st.integers(0, depth))


_INPUTS = (
    st.text(max_size=200)
    | st.binary(max_size=200)
    | _nested()
    | st.builds(lambda field, value: json.dumps({"cmd": 10, "content": "x", field: value},
                                                ensure_ascii=False),
                _FIELDS, _DIGITS | _HUGE | _HUGE.map(str))
    | st.builds(lambda field, nest: f'{{"cmd": 10, "{field}": {nest}}}', _FIELDS, _nested())
)


@given(_INPUTS)
def test_any_input_gives_a_command_or_a_chat_error(text: str | bytes) -> None:
    try:
        parse(text)
    except ChatError as exc:
        assert exc.reason


@given(st.dictionaries(_FIELDS,
                       st.none() | st.booleans() | st.integers() | st.floats() | st.text()
                       | st.lists(st.integers(), max_size=2) | _DIGITS | _HUGE
                       | _HUGE.map(str)))
def test_any_json_object_gives_a_command_or_a_chat_error(data: dict[str, object]) -> None:
    try:
        parse(json.dumps(data))
    except ChatError as exc:
        assert exc.reason


def test_token_bucket_refills_at_its_rate_up_to_its_burst() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.retry_after() == pytest.approx(0.5)
    assert bucket.take(0.5)
    assert not bucket.take(0.5)
    assert [bucket.take(100.0) for _ in range(4)] == [True, True, True, False]
    with pytest.raises(ValueError):
        TokenBucket(rate=0, burst=1, now=0)


@pytest.mark.parametrize("garbage", ['{"cmd": "\u00b2"}', "[" * 30000,
                                     '{"cmd": 10, "dstid": "\uff12", "content": "x"}'])
def test_over_the_wire_such_inputs_are_strikes_and_close_with_1008(
        api: ApiServer, garbage: str, caplog: pytest.LogCaptureFixture) -> None:
    """Before, each answered `unavailable` with a logged traceback and never counted
    towards the malformed-message strikes (30 got 30 replies, no close)."""
    _, token = api.user_with_token(nickname="mallory")

    async def scenario() -> tuple[int | None, list[str]]:
        client = await ChatClient.open(api, token)
        errors: list[str] = []
        with pytest.raises(ConnectionClosed):
            for _ in range(30):
                await client.connection.send(garbage)
            while True:
                frame = await client.frame()
                if frame.get("cmd") == Cmd.ERROR:
                    errors.append(frame["error"])
        await client.close()  # else the server's shutdown waits for a peer that is gone
        return client.connection.close_code, errors

    code, errors = asyncio.run(scenario())
    assert code == 1008
    assert errors and set(errors) <= MALFORMED
    assert not [r for r in caplog.records if r.exc_info]  # no tracebacks


@pytest.mark.parametrize("text, expected", [
    ('{"cmd": 60, "id": 5, "content": "  "}', "empty"),
    ('{"cmd": 60, "content": "x"}', "bad_field"),
    ('{"cmd": 61, "id": 0}', "bad_field"),
    ('{"cmd": 62, "id": 5, "emoji": "ok"}', "bad_field"),
    ('{"cmd": 62, "id": 5, "emoji": "👍 and text"}', "bad_field"),
    ('{"cmd": 62, "id": 5, "emoji": "👍", "on": "yes"}', "bad_field"),
    ('{"cmd": 62, "id": 5, "emoji": "' + "👍" * 17 + '"}', "too_long"),
    ('{"cmd": 10, "dstid": 2, "content": "hi", "mentions": [3]}', "bad_field"),
    ('{"cmd": 11, "dstid": 2, "content": "hi", "mentions": "everyone"}', "bad_field"),
    ('{"cmd": 11, "dstid": 2, "content": "hi", "mentions": [' + ",".join(["1"] * 51) + ']}',
     "too_long"),
    ('{"cmd": 10, "dstid": 2, "content": "hi", "reply_to": -1}', "bad_field"),
    ('{"cmd": 64, "id": 5}', "unknown_cmd"),
])
def test_lifecycle_commands_are_validated(text: str, expected: str) -> None:
    with pytest.raises(ChatError) as refused:
        parse(text)
    assert refused.value.reason == expected


def test_lifecycle_commands_parse() -> None:
    edit = parse('{"cmd": 60, "id": "7", "content": "fixed", "cid": "c"}')
    assert edit == Change(cmd=Cmd.EDIT, id=7, cid="c", content="fixed")
    react = parse('{"cmd": 62, "id": 7, "emoji": "👍🏽", "on": false}')
    assert isinstance(react, Change) and (react.emoji, react.on) == ("👍🏽", False)
    message = parse('{"cmd": 11, "dstid": 2, "content": "hi", "mentions": [4, "3", 4], '
                    '"reply_to": 9}')
    assert isinstance(message, ChatMessage)
    assert (message.mentions, message.reply_to) == ((3, 4), 9)
    assert parse('{"cmd": 11, "dstid": 2, "content": "hi", "mentions": "all"}').mentions == "all"
    sync = parse('{"cmd": 20, "since": 3, "changes_since": 8}')
    assert isinstance(sync, Sync) and sync.changes_since == 8
