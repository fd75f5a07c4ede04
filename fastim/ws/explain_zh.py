"""The Chinese of fastim.ws.explain: one table that turns its English phrases into Chinese.

explain.py stays the one source of what is said about a frame; this is its translation,
phrase by phrase, applied to what explain_frame() produced (`python -m fastim.ws decode
--lang zh`, and the /learn page in Chinese). The RFC's English terms (FIN, RSV1, opcode,
MASK, TEXT, PING, ...) and the close codes' names are kept as they are, as Chinese
tutorials do. tests/ws/test_ws_decode.py decodes frames that reach every sentence of explain.py and
fails if a phrase comes out untranslated, so a sentence changed in explain.py cannot go
unnoticed here.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable

from fastim.ws.explain import Explanation

__all__ = ["ACCEPT_STEP_MEANING", "where", "text", "verdict", "render"]

ACCEPT_STEP_MEANING = {
    "key": "Sec-WebSocket-Key：16 个随机字节的 base64，每条连接都重新生成（§4.1）",
    "joined": "在密钥后拼接 §1.3 规定的 GUID 258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    "（§4.2.2 第 5.4 项）",
    "sha1": "对这串字符做 SHA-1，得到 20 字节的摘要（§4.2.2 第 5.4 项）",
    "accept": "把摘要编码成 base64（RFC 4648 §4），就是 Sec-WebSocket-Accept 的值（§4.2.2）",
}

# Phrases found anywhere in a row, longest first where one contains another.
_PHRASES = {
    # opcodes (§5.2)
    "CONTINUATION: the next fragment of a fragmented message (§5.4)":
        "CONTINUATION：分片消息的下一个分片（§5.4）",
    "TEXT: a data frame carrying UTF-8 text (§5.6)": "TEXT：装着 UTF-8 文本的数据帧（§5.6）",
    "BINARY: a data frame carrying bytes (§5.6)": "BINARY：装着任意字节的数据帧（§5.6）",
    "CLOSE: starts or answers the closing handshake (§5.5.1)":
        "CLOSE：发起或回应关闭握手（§5.5.1）",
    "PING: the receiver must answer with a pong (§5.5.2)": "PING：接收方必须回一个 pong（§5.5.2）",
    "PONG: the answer to a ping (§5.5.3)": "PONG：对 ping 的回应（§5.5.3）",
    # close codes (§7.4.1)
    "the purpose of the connection is fulfilled": "连接的目的已经达到",
    "the endpoint is going away (server shutdown, page left)": "一端要离开了（服务器关机、页面关闭）",
    "the peer broke the protocol": "对方违反了协议",
    "a kind of data the endpoint cannot accept": "收到了无法接受的数据类型",
    "never sent; reports a close frame that had no code": "从不发送；表示收到的关闭帧没有关闭码",
    "never sent; reports a TCP close without a close frame": "从不发送；表示 TCP 断开前没有关闭帧",
    "data not consistent with the message type, e.g. bad UTF-8":
        "数据与消息类型不符，例如不合法的 UTF-8",
    "a message that violates the endpoint's policy": "消息违反了这一端的策略",
    "a message too big to process": "消息太大，无法处理",
    "the client needed an extension the server did not agree to": "客户端需要的扩展，服务器没有同意",
    "the server met an unexpected condition": "服务器遇到了意外情况",
    "the service is restarting": "服务正在重启",
    "the service is overloaded, try again later": "服务过载，请稍后再试",
    "a gateway got an invalid response upstream": "网关从上游收到了无效的响应",
    "never sent; reports a failed TLS handshake": "从不发送；表示 TLS 握手失败",
    "unassigned: reserved for future RFCs (§7.4.2)": "未分配：留给将来的 RFC（§7.4.2）",
    "for libraries and frameworks, registered with IANA (§7.4.2)":
        "供库和框架使用，需在 IANA 注册（§7.4.2）",
    "for private use by applications (§7.4.2)": "供应用自行使用（§7.4.2）",
    "outside the ranges of §7.4.2": "不在 §7.4.2 规定的范围内",
    "reserved (§7.4.1)": "保留（§7.4.1）",
    # FIN, RSV, MASK, length
    "not final: more fragments of this message follow (§5.4)": "未结束：这条消息后面还有分片（§5.4）",
    "final: the last frame of its message (§5.2)": "结束：这是消息的最后一帧（§5.2）",
    "no extension bits (§5.2)": "没有使用扩展位（§5.2）",
    "RSV1: the message is compressed (RFC 7692 §6)": "RSV1：这条消息是压缩过的（RFC 7692 §6）",
    "reserved bits, 0 unless an extension gives them a meaning (§5.2)":
        "保留位：除非扩展赋予它们含义，否则必须为 0（§5.2）",
    "masked, as every frame a client sends must be (§5.3)":
        "已加掩码，客户端发出的每一帧都必须如此（§5.3）",
    "not masked: a server must refuse a frame a client did not mask (§5.1)":
        "未加掩码：客户端没加掩码的帧，服务器必须拒绝（§5.1）",
    "masked: a client must refuse a masked frame from the server (§5.1)":
        "已加掩码：服务器发来加了掩码的帧，客户端必须拒绝（§5.1）",
    "not masked, as every frame a server sends must be (§5.1)":
        "未加掩码，服务器发出的每一帧都必须如此（§5.1）",
    "masked: sent by a client, which masks every frame (§5.3)":
        "已加掩码：由客户端发出，客户端给每一帧加掩码（§5.3）",
    "not masked: sent by a server, which never masks (§5.1)":
        "未加掩码：由服务器发出，服务器从不加掩码（§5.1）",
    "7-bit length: 0-125 fits in byte 1 itself (§5.2)": "7 位长度：0-125 直接放在字节 1 里（§5.2）",
    "16-bit length: the length follows in bytes 2-3 (§5.2)": "16 位长度：长度在后面的字节 2-3 里（§5.2）",
    "64-bit length: the length follows in bytes 2-9 (§5.2)": "64 位长度：长度在后面的字节 2-9 里（§5.2）",
    "not the shortest form, which a sender must use (§5.2); receivers accept it":
        "不是最短形式（发送方必须用最短形式，§5.2）；接收方仍然接受",
    # the payload
    "not part of this frame: the next frame starts here": "不属于这一帧：下一帧从这里开始",
    "a receiver answers with a pong carrying this payload (§5.5.2)":
        "接收方要回一个带同样载荷的 pong（§5.5.2）",
    "valid only after a TEXT or BINARY frame with FIN=0; that frame says whether this is text"
    " (§5.4)": "只能跟在 FIN=0 的 TEXT 或 BINARY 帧之后；是不是文本由那一帧决定（§5.4）",
    "no status code: the receiver reports 1005 NO_STATUS_RCVD (§7.1.5)":
        "没有关闭码：接收方报告 1005 NO_STATUS_RCVD（§7.1.5）",
    # rules broken
    "RSV2 and RSV3 must be 0: no extension here uses them": "RSV2 和 RSV3 必须为 0：这里没有扩展使用它们",
    "RSV1 is set but no extension was negotiated (with permessage-deflate, try --deflate)":
        "设置了 RSV1，但没有协商任何扩展（如果协商了 permessage-deflate，请加 --deflate）",
    "RSV1 (compressed) may be set on the first frame of a data message only":
        "RSV1（压缩）只能设置在数据消息的第一帧上",
    "a control frame must not be fragmented (FIN=0)": "控制帧不得分片（FIN=0）",
    "a control frame carries at most 125 bytes": "控制帧的载荷最多 125 字节",
    "a client's frame must be masked": "客户端的帧必须加掩码",
    "a server's frame must not be masked": "服务器的帧不得加掩码",
    "the most significant bit of a 64-bit length must be 0": "64 位长度的最高位必须为 0",
    "a close payload is empty or starts with a 2-byte code, not 1 byte":
        "关闭帧的载荷要么为空，要么以 2 字节的关闭码开头，不能只有 1 字节",
}

_WHAT = {"the text so far": "目前收到的文本", "the text": "文本", "the close reason": "关闭原因"}


def _payload(match: re.Match[str]) -> str:
    here = f"，这里有 {match[3]} 字节" if match[3] else ""
    state = "已加掩码" if match[4] == "masked" else "未加掩码"
    return f"载荷 {match[1]} 字节{here}，{state}："


# Phrases with values in them: (pattern, replacement), tried in order.
_PATTERNS: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    (re.compile(r"^payload length (.+) = (\d+)$"), r"载荷长度 \1 = \2"),
    (re.compile(r"^masking key (.+) \(§5\.3\)$"), r"掩码键 \1（§5.3）"),
    (re.compile(r"^payload, (\d+) bytes?(, (\d+) here)?, (masked|not masked):$"), _payload),
    (re.compile(r"^\(byte i XOR key byte i % 4, §5\.3: (.*)\)$"),
     r"（第 i 字节 XOR 掩码键第 i % 4 字节，§5.3：\1）"),
    (re.compile(r"^payload( \+ 00 00 ff ff)?, inflated as raw DEFLATE \(RFC 7692 §7\.2\.2\):$"),
     r"载荷\1，按原始 DEFLATE 解压（RFC 7692 §7.2.2）："),
    (re.compile(r": reserved for future control frames \(§5\.2\)$"), "：保留给将来的控制帧（§5.2）"),
    (re.compile(r": reserved for future data frames \(§5\.2\)$"), "：保留给将来的数据帧（§5.2）"),
    (re.compile(r" \(the message continues\)$"), "（消息未完）"),
    (re.compile(r"^a receiver that has not closed yet answers with a close frame, code (\d+)"
                r" \(§5\.5\.1\)$"), r"尚未关闭的接收方要回一个关闭帧，关闭码 \1（§5.5.1）"),
    (re.compile(r"^\.\.\. (\d+) more bytes?$"), r"……还有 \1 字节"),
    (re.compile(r"^no payload$"), "没有载荷"),
    (re.compile(r"^\(none\)$"), "（无）"),
    (re.compile(r"^opcode 0x([0-9a-f]) is reserved$"), r"操作码 0x\1 是保留值"),
    (re.compile(r"^close code (\d+) may not be sent$"), r"关闭码 \1 不允许发送"),
    (re.compile(r"^the payload inflates to more than (\d+) bytes, the receiver's limit$"),
     r"载荷解压后超过 \1 字节，超出了接收方的上限"),
    (re.compile(r"^the payload does not inflate on its own \((.*)\): it refers back to an earlier"
                r" message \(context takeover\), which a receiver must have seen$"),
     r"载荷无法单独解压（\1）：它引用了之前的消息（上下文接管），接收方必须见过那条消息"),
    (re.compile(r"^the payload is not valid DEFLATE data \((.*)\)$"),
     r"载荷不是合法的 DEFLATE 数据（\1）"),
    (re.compile(r"^(the text so far|the text|the close reason) is not valid UTF-8 at byte (\d+)"
                r" of it \(([0-9a-f]{2})\)$"),
     lambda m: f"{_WHAT[m[1]]}在第 {m[2]} 字节（{m[3]}）处不是合法的 UTF-8"),
    (re.compile(r"^(the text so far|the text|the close reason) is not valid UTF-8: ends in (.+),"
                r" the start of a surrogate$"),
     lambda m: f"{_WHAT[m[1]]}不是合法的 UTF-8：结尾的 {m[2]} 是 UTF-16 代理项（surrogate）的开头"),
]

_WHERE = {"unmasked": "去掩码", "inflated": "解压后", "text": "文本", "as text": "按文本",
          "note": "注意", "code": "关闭码", "reason": "原因"}


def where(label: str) -> str:
    """The left column: "byte 0" → "字节 0"; field names (FIN, opcode, ...) stay."""
    stripped = label.strip()
    indent = label[: len(label) - len(label.lstrip())]
    match = re.fullmatch(r"bytes? (\d+(?:-\d+)?)", stripped)
    if match:
        return f"{indent}字节 {match[1]}"
    return indent + _WHERE.get(stripped, stripped)


def text(row: str) -> str:
    """One row's text in Chinese (data, hex and quoted text stay as they are)."""
    for english, chinese in _PHRASES.items():
        if english in row:
            row = row.replace(english, chinese)
    for pattern, replacement in _PATTERNS:
        row = pattern.sub(replacement, row)
    return row


def verdict(line: str) -> str:
    """One line of Explanation.verdict() in Chinese."""
    if match := re.fullmatch(r"INVALID: (.*) \(((?:RFC \d+ )?§[\d.]+)\)\.", line):
        return f"无效：{text(match[1])}（{match[2]}）。"
    if match := re.fullmatch(
        r"A receiver must fail the connection with close code (\d+) (\w+) \(RFC 6455 §7\.1\.7\)\.",
        line,
    ):
        return f"接收方必须以关闭码 {match[1]} {match[2]} 让连接失败（RFC 6455 §7.1.7）。"
    if match := re.fullmatch(
        r"INCOMPLETE: the header needs at least (\d+) bytes, (\d+) are here: (\d+) bytes?"
        r" missing, maybe more for the payload\.",
        line,
    ):
        return (
            f"不完整：帧头至少需要 {match[1]} 字节，这里有 {match[2]} 字节："
            f"还差 {match[3]} 字节，载荷可能还要更多。"
        )
    if match := re.fullmatch(
        r"INCOMPLETE: the frame is (\d+) bytes long, (\d+) are here: (\d+) bytes? missing\.", line
    ):
        return f"不完整：这一帧长 {match[1]} 字节，这里有 {match[2]} 字节：还差 {match[3]} 字节。"
    match = re.fullmatch(r"VALID: a complete (\w+) frame of (\d+) bytes\.", line)
    assert match is not None, line  # the four kinds of verdict line above
    return f"有效：一个完整的 {match[1]} 帧，共 {match[2]} 字节。"


def render(explanation: Explanation) -> str:
    """`Explanation.render()` in Chinese, as `python -m fastim.ws decode --lang zh` prints."""
    data, receiver = explanation.data, explanation.receiver
    who = "" if receiver is None else ("，由服务器接收" if receiver.value == "server" else "，由客户端接收")
    lines = [f"{len(data)} 字节{who}"]
    for label, row in explanation.rows:
        indent = "  " if label in ("FIN", "RSV1-3", "opcode", "MASK", "length", *_WHERE) else ""
        lines.append(f"{_pad(where(indent + label), 11)} {text(row)}".rstrip())
    lines.extend(verdict(line) for line in explanation.verdict())
    return "\n".join(lines)


def _pad(label: str, width: int) -> str:
    """`label` padded with spaces to `width` columns of a terminal, where a Chinese
    character takes two."""
    columns = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in label)
    return label + " " * max(0, width - columns)
