"""fastim.ws.explain_zh: every sentence explain.py can say comes out in Chinese, and every
entry of the table is one explain.py says (so neither can drift from the other)."""

from __future__ import annotations

import re

import pytest

from fastim.ws import explain_zh
from fastim.ws.__main__ import main
from fastim.ws.deflate import PerMessageDeflate
from fastim.ws.explain import explain_frame, parse_hex
from fastim.ws.frames import CloseCode, Frame, Opcode, encode_frame
from fastim.ws.protocol import Role

S, C = Role.SERVER, Role.CLIENT
HELLO_MASKED = "81 85 37 fa 21 3d 7f 9f 4d 51 58"
HELLO = "81 05 48 65 6c 6c 6f"


def _compressed(message: bytes, fin: bool = True, second: bool = False) -> bytes:
    deflate = PerMessageDeflate()
    payload = deflate.compress(message)
    if second:
        payload = deflate.compress(message)
    return encode_frame(Frame(Opcode.TEXT, payload, fin=fin, rsv1=True))


# (frame, receiver, deflate, max_size): together they reach every sentence of explain.py.
CORPUS: list[tuple[bytes, Role | None, bool, int | None]] = [
    *[(parse_hex(HELLO_MASKED), who, False, None) for who in (S, C, None)],
    *[(parse_hex(HELLO), who, False, None) for who in (S, C, None)],
    *[(parse_hex(h), None, False, None) for h in (
        "01 03 48 65 6c", "80 02 6c 6f", "89 02 68 69", "8a 00", "88 00", "88 02 03 e8",
        "88 05 03 e8 62 79 65", "88 01 03", "88 04 03 e8 c3 28", "81 02 c3 28", "01 02 ed a0",
        "83 00", "8b 00", "a1 00", "c1 00", "09 00", "89 7e 00 7e",
        "82 7f 80 00 00 00 00 00 00 00", "82 7e 00 02 68 69",
        "82 7f 00 00 00 00 00 00 00 02 68 69", "82 7f 00 00 00 00 00 00 01 00",
        "81 05 48 65 6c 6c 6f 81", "81", "81 7e", "81 05 48", "82 02 00 ff", "82 02 68 69",
        "88 02 0f a0", "88 02 13 88", "88 02 07 d0", "88 02 0b b8", "88 02 03 ec",
    )],
    *[(encode_frame(Frame(Opcode.CLOSE, int(code).to_bytes(2, "big"))), None, False, None)
      for code in CloseCode],
    (encode_frame(Frame(Opcode.BINARY, bytes(200))), None, False, None),
    (parse_hex("c1 00"), None, True, None),
    (parse_hex("c9 00"), None, True, None),
    (parse_hex("c1 05 ff 00 11 00 00"), None, True, None),
    (_compressed(b"hello " * 20), None, True, None),
    (_compressed(b"hello " * 20, fin=False), None, True, None),
    (_compressed(b"hello " * 20, second=True), None, True, None),
    (_compressed(bytes(100_000)), None, True, 1000),
]


def explanations() -> list[tuple[str, str]]:
    """(English, Chinese) of every row and verdict line of the corpus."""
    pairs = []
    for data, receiver, deflate, max_size in CORPUS:
        explained = explain_frame(data, receiver=receiver, deflate=deflate, max_size=max_size)
        pairs += [(text, explain_zh.text(text)) for _, text in explained.rows]
        pairs += [(line, explain_zh.verdict(line)) for line in explained.verdict()]
        pairs += [(v.rule, explain_zh.text(v.rule)) for v in explained.violations]
    return pairs


def untranslated(chinese: str) -> str | None:
    """Three English words in a row, outside quoted text and （…）, whose content is data,
    a section or zlib's own message."""
    rest = re.sub(r"'[^']*'|\"[^\"]*\"|（[^（）]*）", "", chinese)
    found = re.search(r"[A-Za-z]{2,}(?: [a-z]{2,}){2,}", rest)
    return found.group() if found else None


def test_every_sentence_comes_out_in_chinese() -> None:
    pairs = explanations()
    assert len(pairs) > 300
    left = {english: found for english, chinese in pairs if (found := untranslated(chinese))}
    assert left == {}


def test_every_entry_of_the_table_is_something_explain_says() -> None:
    english = "\n".join(text for text, _ in explanations())
    unused = [phrase for phrase in explain_zh._PHRASES if phrase not in english]
    assert unused == []
    lines = english.splitlines()
    unmatched = [p.pattern for p, _ in explain_zh._PATTERNS
                 if not any(p.search(line) for line in lines)]
    assert unmatched == []


def test_the_left_column_and_the_first_line() -> None:
    assert explain_zh.where("byte 0") == "字节 0"
    assert explain_zh.where("bytes 2-5") == "字节 2-5"
    assert explain_zh.where("  unmasked") == "  去掩码"
    assert explain_zh.where("  FIN") == "  FIN"
    rendered = explain_zh.render(explain_frame(parse_hex(HELLO_MASKED), receiver=S))
    assert rendered.splitlines()[0] == "11 字节，由服务器接收"
    assert rendered.splitlines()[1] == "字节 0      0x81 = 1 000 0001"
    assert rendered.endswith("有效：一个完整的 TEXT 帧，共 11 字节。")
    client = explain_zh.render(explain_frame(parse_hex(HELLO), receiver=C))
    assert client.splitlines()[0] == "7 字节，由客户端接收"
    assert explain_zh.render(explain_frame(parse_hex(HELLO))).splitlines()[0] == "7 字节"
    assert set(explain_zh.ACCEPT_STEP_MEANING) == {"key", "joined", "sha1", "accept"}


def test_decode_in_chinese(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", "--lang", "zh", "--server", *HELLO.split()]) == 1
    out = capsys.readouterr().out
    assert "无效：客户端的帧必须加掩码（RFC 6455 §5.1）。" in out
    assert "接收方必须以关闭码 1002 PROTOCOL_ERROR 让连接失败（RFC 6455 §7.1.7）。" in out
