"""The /chat wire protocol: validation of every client command (docs/chat-protocol.md)."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastim.chat.protocol import (
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


@pytest.mark.parametrize(("text", "expected"), [
    ("not json", "bad_json"),
    (b"\xff\xfe", "bad_json"),
    ("[1, 2]", "bad_json"),
    ('"a string"', "bad_json"),
    ('{"cmd": 99}', "unknown_cmd"),
    ('{"cmd": "ten"}', "bad_field"),
    ('{"cmd": true}', "bad_field"),
    ('{"cmd": 10, "dstid": 2, "media": 3, "content": "x"}', "unknown_media"),
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
    assert parse('{"cmd": 30, "kind": 11, "dstid": 3, "upto": 9}') == Read(Cmd.GROUP, 3, 9)
    assert parse('{"cmd": 40, "kind": 10, "dstid": 3}') == Typing(Cmd.SINGLE, 3)


def test_encode_is_compact_and_keeps_unicode() -> None:
    assert encode({"content": "你好 😀", "id": 1}) == '{"content":"你好 😀","id":1}'


@given(st.text(max_size=200) | st.binary(max_size=200))
def test_any_input_gives_a_command_or_a_chat_error(text: str | bytes) -> None:
    try:
        parse(text)
    except ChatError as exc:
        assert exc.reason


@given(st.dictionaries(st.sampled_from(["cmd", "dstid", "media", "content", "url", "pic",
                                        "memo", "amount", "cid", "since", "limit", "kind",
                                        "upto"]),
                       st.none() | st.booleans() | st.integers() | st.floats() | st.text()
                       | st.lists(st.integers(), max_size=2)))
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
