"""What the scenarios send and serve: the realistic chat message of the permessage-deflate
scenario, and the static file of the HTTP scenario.

A fastIM group message (cmd 11, media 1 = text) as the web client sends it: its JSON
fields, a sentence of mixed Chinese and English text with an emoji, about 400 bytes,
the size at which compression starts to pay and whose repetitions (field names, the
url prefix) are what DEFLATE finds in real chat traffic.
"""

from __future__ import annotations

import json
from pathlib import Path

CHAT_MESSAGE = {
    "id": 1738412,
    "userid": 10086,
    "cmd": 11,
    "dstid": 2048,
    "media": 1,
    "content": (
        "大家好，明天下午三点在三楼会议室开周会，记得带上本周的进度报告。"
        " Tomorrow's sync is at 3 pm in room 301 — please bring this week's status report,"
        " and the slides for the release plan. 收到请回复，谢谢！ 👍"
    ),
    "pic": "",
    "url": "",
    "memo": "",
    "amount": 0,
    "createat": 1732700000123,
    "avatar": "/asset/images/avatar/10086.png",
    "nickname": "产品-王小明",
}


def chat_message_bytes() -> bytes:
    return json.dumps(CHAT_MESSAGE, ensure_ascii=False, separators=(",", ":")).encode()


def write_chat_message(directory: Path) -> Path:
    """Write the message where the load generator can read it; return the path."""
    path = directory / "chat-message.json"
    path.write_bytes(chat_message_bytes())
    return path


def write_static_file(directory: Path, name: str, size: int) -> Path:
    """Write the HTTP scenario's static file, `size` bytes of JavaScript-like text, into
    `directory`/static/ (created); return that directory."""
    static = directory / "static"
    static.mkdir(parents=True, exist_ok=True)
    line = b"export function f%05d(x) { return x * 31 + %d; } // fastim benchmark\n"
    text = b"".join(line % (i, i) for i in range(size // 40 + 1))[:size]
    (static / name).write_bytes(text)
    return static
