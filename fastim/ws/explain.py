"""Explain one WebSocket frame field by field, for learners (`python -m fastim.ws decode HEX`).

The header is read here by hand, bit by bit, in the order RFC 6455 §5.2 draws it, instead of
through FrameDecoder: the point is to show every field. Each field is checked against the
rules a receiver applies. A broken rule is reported with its RFC section and the close code
the receiver fails the connection with (§7.1.7, §7.4.1); a frame cut short is reported with
the number of bytes missing. tests/ws/test_ws_decode.py checks that the verdicts agree with
fastim's own receiver (FrameDecoder and WebSocketProtocol).

    >>> print(explain_frame(bytes.fromhex("8105 48656c6c6f")).render())  # doctest: +ELLIPSIS
    7 bytes
    byte 0      0x81 = 1 000 0001
      FIN       1     final: the last frame of its message (§5.2)
    ...
    VALID: a complete TEXT frame of 7 bytes.
"""

from __future__ import annotations

import base64
import codecs
import contextlib
import hashlib
import re
from dataclasses import dataclass, field

from fastim.ws.deflate import PerMessageDeflate
from fastim.ws.exceptions import ProtocolError
from fastim.ws.frames import MAX_CONTROL_PAYLOAD, CloseCode, Opcode, apply_mask, is_valid_close_code
from fastim.ws.handshake import GUID
from fastim.ws.protocol import Role

__all__ = [
    "Violation",
    "Explanation",
    "explain_frame",
    "parse_hex",
    "AcceptSteps",
    "accept_steps",
    "ACCEPT_STEP_MEANING",
]

# Longest payload shown in full; a learner pasting a big frame wants the start, not a wall.
SHOWN_BYTES = 128
_WHERE = 12  # width of the left column ("byte 0", "bytes 2-5", "  FIN")

_OPCODE_MEANING = {
    Opcode.CONTINUATION: "CONTINUATION: the next fragment of a fragmented message (§5.4)",
    Opcode.TEXT: "TEXT: a data frame carrying UTF-8 text (§5.6)",
    Opcode.BINARY: "BINARY: a data frame carrying bytes (§5.6)",
    Opcode.CLOSE: "CLOSE: starts or answers the closing handshake (§5.5.1)",
    Opcode.PING: "PING: the receiver must answer with a pong (§5.5.2)",
    Opcode.PONG: "PONG: the answer to a ping (§5.5.3)",
}

# RFC 6455 §7.4.1 and the IANA registry (§11.7): what each code says.
_CLOSE_MEANING = {
    CloseCode.NORMAL_CLOSURE: "the purpose of the connection is fulfilled",
    CloseCode.GOING_AWAY: "the endpoint is going away (server shutdown, page left)",
    CloseCode.PROTOCOL_ERROR: "the peer broke the protocol",
    CloseCode.UNSUPPORTED_DATA: "a kind of data the endpoint cannot accept",
    CloseCode.NO_STATUS_RCVD: "never sent; reports a close frame that had no code",
    CloseCode.ABNORMAL_CLOSURE: "never sent; reports a TCP close without a close frame",
    CloseCode.INVALID_DATA: "data not consistent with the message type, e.g. bad UTF-8",
    CloseCode.POLICY_VIOLATION: "a message that violates the endpoint's policy",
    CloseCode.MESSAGE_TOO_BIG: "a message too big to process",
    CloseCode.MANDATORY_EXTENSION: "the client needed an extension the server did not agree to",
    CloseCode.INTERNAL_ERROR: "the server met an unexpected condition",
    CloseCode.SERVICE_RESTART: "the service is restarting",
    CloseCode.TRY_AGAIN_LATER: "the service is overloaded, try again later",
    CloseCode.BAD_GATEWAY: "a gateway got an invalid response upstream",
    CloseCode.TLS_HANDSHAKE: "never sent; reports a failed TLS handshake",
}

_OPCODES = frozenset(int(op) for op in Opcode)
_CLOSE_CODES = frozenset(int(code) for code in CloseCode)

# RFC 7692 §7.2.1: the sender strips the 4 bytes a sync flush ends with; §7.2.2 puts them back.
_FLUSH_TAIL = b"\x00\x00\xff\xff"


@dataclass(frozen=True)
class Violation:
    """A rule the frame breaks: what is wrong, the RFC section that says so, and the close
    code a receiver must fail the connection with."""

    rule: str
    section: str
    code: CloseCode


@dataclass
class Explanation:
    """What explain_frame() found.

    - `lines`: the field-by-field explanation, ready to print;
    - `violations`: the rules broken, in the order a receiver meets them (the first one's
      `code` is the close code the receiver sends);
    - `missing`: how many more bytes the frame needs (0 when it is complete; while the header
      itself is incomplete, the least number that could complete it);
    - `size`: the frame's length on the wire once its header is known, else None;
    - `opcode`, `fin`, `payload` (unmasked, None until complete), `message` (the payload as
      the receiver's application sees it: inflated, and a str for valid text);
    - `rows`: the explanation's rows as (which bits or bytes, what they mean), for pages
      that lay them out themselves (the app's /learn).
    """

    data: bytes
    receiver: Role | None = None
    max_size: int | None = None
    lines: list[str] = field(default_factory=list)
    rows: list[tuple[str, str]] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    missing: int = 0
    size: int | None = None
    opcode: int | None = None
    fin: bool = True
    payload: bytes | None = None
    message: str | bytes | None = None

    @property
    def valid(self) -> bool:
        """A complete frame that breaks no rule a single frame can break."""
        return not self.violations and not self.missing

    @property
    def close_code(self) -> CloseCode | None:
        """The close code a receiver fails the connection with, if the frame breaks a rule."""
        return self.violations[0].code if self.violations else None

    def row(self, where: str, text: str) -> None:
        """Add one line: a left column saying which bits or bytes, then what they mean."""
        self.lines.append(f"{where:<{_WHERE - 1}} {text}".rstrip())
        self.rows.append((where.strip(), text))

    def verdict(self) -> list[str]:
        """The closing lines: VALID, INVALID (rule, section, close code) or INCOMPLETE."""
        out: list[str] = []
        for violation in self.violations:
            out.append(f"INVALID: {violation.rule} ({violation.section}).")
        if self.violations:
            code = self.violations[0].code
            out.append(
                f"A receiver must fail the connection with close code {int(code)} "
                f"{code.name} (RFC 6455 §7.1.7)."
            )
        if self.missing:
            have = len(self.data)
            if self.size is None:
                out.append(
                    f"INCOMPLETE: the header needs at least {have + self.missing} bytes, "
                    f"{have} are here: {_count(self.missing, 'byte')} missing, "
                    "maybe more for the payload."
                )
            else:
                out.append(
                    f"INCOMPLETE: the frame is {self.size} bytes long, {have} are here: "
                    f"{_count(self.missing, 'byte')} missing."
                )
        if not out:
            assert self.opcode is not None  # a valid frame has a known opcode
            out.append(f"VALID: a complete {Opcode(self.opcode).name} frame of {self.size} bytes.")
        return out

    def render(self) -> str:
        """The whole explanation as printed by `python -m fastim.ws decode`."""
        return "\n".join([*self.lines, *self.verdict()])


# The opening handshake's proof, step by step (RFC 6455 §4.2.2 item 5.4, §1.3).
ACCEPT_STEP_MEANING = {
    "key": "Sec-WebSocket-Key: base64 of 16 random bytes, new for each connection (§4.1)",
    "joined": f"the key with the GUID of §1.3 appended, {GUID} (§4.2.2 item 5.4)",
    "sha1": "the SHA-1 digest of those characters, 20 bytes (§4.2.2 item 5.4)",
    "accept": "the digest in base64 (RFC 4648 §4): the value of Sec-WebSocket-Accept (§4.2.2)",
}


@dataclass(frozen=True)
class AcceptSteps:
    """How a server turns a Sec-WebSocket-Key into its Sec-WebSocket-Accept, one value per
    step of ACCEPT_STEP_MEANING."""

    key: str
    joined: str
    sha1: bytes
    accept: str


def accept_steps(key: str) -> AcceptSteps:
    """The steps of handshake.accept_key(key), each value kept."""
    joined = key + GUID
    digest = hashlib.sha1(joined.encode("ascii")).digest()
    return AcceptSteps(key, joined, digest, base64.b64encode(digest).decode("ascii"))


def parse_hex(text: str) -> bytes:
    """Bytes from hex as people write it: `81 85 37 fa`, `81:85:37:fa`, `0x81 0x85`, `8185`.

    Raises ValueError saying what is wrong.
    """
    tokens = [t for t in re.split(r"[\s:,]+", text) if t]
    digits = "".join(t[2:] if t.lower().startswith("0x") else t for t in tokens)
    bad = re.search(r"[^0-9a-fA-F]", digits)
    if bad:
        raise ValueError(f"not a hex digit: {bad.group()!r}")
    if not digits:
        raise ValueError("no bytes given")
    if len(digits) % 2:
        raise ValueError(f"odd number of hex digits ({len(digits)}): each byte is two")
    return bytes.fromhex(digits)


def explain_frame(
    data: bytes,
    *,
    receiver: Role | None = None,
    deflate: bool = False,
    max_size: int | None = None,
) -> Explanation:
    """Explain the frame at the start of `data`, field by field (RFC 6455 §5.2).

    `receiver` says who received it, which decides whether it must be masked (§5.1): a
    server receives masked frames only, a client unmasked ones; None explains both. With
    `deflate`, permessage-deflate (RFC 7692) is taken as negotiated: RSV1 then means a
    compressed message, whose payload is inflated, to at most `max_size` bytes when given
    (as a receiver does, so that a small payload cannot inflate to gigabytes): more is
    reported as a 1009 violation.
    """
    ex = Explanation(bytes(data), receiver, max_size=max_size)
    who = ""
    if receiver is not None:
        who = f" received by a {receiver.value}"
    ex.lines.append(f"{_count(len(data), 'byte')}{who}")
    if len(data) < 2:
        # §5.2: the two fixed header bytes come before anything can be said.
        ex.missing = 2 - len(data)
        if data:
            _explain_byte0(ex, data[0], deflate)
        return ex

    opcode = _explain_byte0(ex, data[0], deflate)
    masked, length7 = _explain_byte1(ex, data[1], opcode)

    # §5.2: 126 and 127 in the 7-bit field announce a 16-bit or 64-bit length after it.
    extra = {126: 2, 127: 8}.get(length7, 0)
    header_size = 2 + extra + (4 if masked else 0)
    if len(data) < 2 + extra:
        ex.missing = header_size - len(data)
        return ex
    length = length7
    if extra:
        length = int.from_bytes(data[2 : 2 + extra], "big")
        _explain_extended_length(ex, data[2 : 2 + extra], length, length7)
    if not length >> 63:  # (a length with the top bit set was reported as broken)
        ex.size = header_size + length
        ex.missing = max(0, ex.size - len(data))
    if len(data) < header_size or ex.size is None:
        return ex

    mask = data[2 + extra : header_size] if masked else None
    if mask is not None:
        ex.row(_bytes_at(2 + extra, 4), f"masking key {mask.hex(' ')} (§5.3)")
    body = data[header_size : ex.size]
    _explain_payload(ex, header_size, length, body, mask, deflate)
    if len(data) > ex.size:
        ex.row(
            _bytes_at(ex.size, len(data) - ex.size),
            "not part of this frame: the next frame starts here",
        )
    return ex


# -- the two fixed bytes ----------------------------------------------------------------------


def _explain_byte0(ex: Explanation, byte: int, deflate: bool) -> int:
    fin = bool(byte & 0x80)
    rsv1, rsv2, rsv3 = bool(byte & 0x40), bool(byte & 0x20), bool(byte & 0x10)
    opcode = byte & 0x0F
    ex.opcode, ex.fin = opcode, fin
    known = opcode in _OPCODES
    is_control = bool(opcode & 0x8)
    ex.row("byte 0", f"0x{byte:02x} = {byte >> 7} {(byte >> 4) & 7:03b} {opcode:04b}")

    ex.row(
        "  FIN",
        f"{int(fin)}     "
        + (
            "final: the last frame of its message (§5.2)"
            if fin
            else "not final: more fragments of this message follow (§5.4)"
        ),
    )

    bits = f"{int(rsv1)}{int(rsv2)}{int(rsv3)}"
    if not (rsv1 or rsv2 or rsv3):
        ex.row("  RSV1-3", f"{bits}   no extension bits (§5.2)")
    elif deflate and rsv1 and not (rsv2 or rsv3) and opcode in (Opcode.TEXT, Opcode.BINARY):
        ex.row("  RSV1-3", f"{bits}   RSV1: the message is compressed (RFC 7692 §6)")
    else:
        ex.row(
            "  RSV1-3", f"{bits}   reserved bits, 0 unless an extension gives them a meaning (§5.2)"
        )

    if known:
        ex.row("  opcode", f"{opcode:04b}  0x{opcode:x} {_OPCODE_MEANING[Opcode(opcode)]}")
    else:
        kind = "control" if is_control else "data"
        ex.row("  opcode", f"{opcode:04b}  0x{opcode:x}: reserved for future {kind} frames (§5.2)")
        ex.violations.append(
            Violation(f"opcode 0x{opcode:x} is reserved", "RFC 6455 §5.2", CloseCode.PROTOCOL_ERROR)
        )
    if rsv2 or rsv3:
        ex.violations.append(
            Violation(
                "RSV2 and RSV3 must be 0: no extension here uses them",
                "RFC 6455 §5.2",
                CloseCode.PROTOCOL_ERROR,
            )
        )
    if rsv1 and not deflate:
        ex.violations.append(
            Violation(
                "RSV1 is set but no extension was negotiated (with permessage-deflate, try --deflate)",
                "RFC 6455 §5.2",
                CloseCode.PROTOCOL_ERROR,
            )
        )
    elif rsv1 and opcode not in (Opcode.TEXT, Opcode.BINARY):
        ex.violations.append(
            Violation(
                "RSV1 (compressed) may be set on the first frame of a data message only",
                "RFC 7692 §6.1",
                CloseCode.PROTOCOL_ERROR,
            )
        )
    if is_control and not fin:
        ex.violations.append(
            Violation(
                "a control frame must not be fragmented (FIN=0)",
                "RFC 6455 §5.5",
                CloseCode.PROTOCOL_ERROR,
            )
        )
    return opcode


def _explain_byte1(ex: Explanation, byte: int, opcode: int) -> tuple[bool, int]:
    masked = bool(byte & 0x80)
    length7 = byte & 0x7F
    ex.row("byte 1", f"0x{byte:02x} = {byte >> 7} {length7:07b}")
    if opcode & 0x8 and length7 > MAX_CONTROL_PAYLOAD:
        # A control frame announcing 126 or 127 needs no more bytes to be wrong.
        ex.violations.append(
            Violation(
                "a control frame carries at most 125 bytes",
                "RFC 6455 §5.5",
                CloseCode.PROTOCOL_ERROR,
            )
        )

    if ex.receiver is Role.SERVER:
        if masked:
            meaning = "masked, as every frame a client sends must be (§5.3)"
        else:
            meaning = "not masked: a server must refuse a frame a client did not mask (§5.1)"
            ex.violations.append(
                Violation(
                    "a client's frame must be masked", "RFC 6455 §5.1", CloseCode.PROTOCOL_ERROR
                )
            )
    elif ex.receiver is Role.CLIENT:
        if masked:
            meaning = "masked: a client must refuse a masked frame from the server (§5.1)"
            ex.violations.append(
                Violation(
                    "a server's frame must not be masked", "RFC 6455 §5.1", CloseCode.PROTOCOL_ERROR
                )
            )
        else:
            meaning = "not masked, as every frame a server sends must be (§5.1)"
    elif masked:
        meaning = "masked: sent by a client, which masks every frame (§5.3)"
    else:
        meaning = "not masked: sent by a server, which never masks (§5.1)"
    ex.row("  MASK", f"{int(masked)}     {meaning}")

    if length7 < 126:
        ex.row("  length", f"{length7:<6}7-bit length: 0-125 fits in byte 1 itself (§5.2)")
    elif length7 == 126:
        ex.row("  length", "126   16-bit length: the length follows in bytes 2-3 (§5.2)")
    else:
        ex.row("  length", "127   64-bit length: the length follows in bytes 2-9 (§5.2)")
    return masked, length7


def _explain_extended_length(ex: Explanation, raw: bytes, length: int, length7: int) -> None:
    ex.row(_bytes_at(2, len(raw)), f"payload length {raw.hex(' ')} = {length}")
    if length >> 63:
        ex.violations.append(
            Violation(
                "the most significant bit of a 64-bit length must be 0",
                "RFC 6455 §5.2",
                CloseCode.PROTOCOL_ERROR,
            )
        )
    elif length < 126 or (length7 == 127 and length < 1 << 16):
        # §5.2 asks the *sender* for the shortest form; receivers (fastim too) accept others.
        ex.row(
            "  note", "not the shortest form, which a sender must use (§5.2); receivers accept it"
        )


# -- the payload ------------------------------------------------------------------------------


def _explain_payload(
    ex: Explanation, start: int, length: int, body: bytes, mask: bytes | None, deflate: bool
) -> None:
    if length == 0:
        ex.row("", "no payload")
    else:
        here = "" if len(body) == length else f", {len(body)} here"
        state = "masked" if mask is not None else "not masked"
        where = _bytes_at(start, len(body)) if body else ""
        ex.row(where, f"payload, {_count(length, 'byte')}{here}, {state}:")
        _hex_rows(ex, "", body)
    unmasked = body
    if mask is not None and body:
        unmasked = apply_mask(body, mask)
        _hex_rows(ex, "  unmasked", unmasked)
        first = min(len(body), 4)
        worked = ", ".join(f"{body[i]:02x}^{mask[i]:02x}={unmasked[i]:02x}" for i in range(first))
        ex.row("", f"(byte i XOR key byte i % 4, §5.3: {worked}{', ...' if len(body) > 4 else ''})")

    if ex.violations:
        return  # the header is already wrong: the payload means nothing to a receiver
    opcode = ex.opcode
    if ex.missing:
        if opcode == Opcode.TEXT and not ex.data[0] & 0x70 and unmasked:
            # §8.1 lets a receiver fail as soon as text cannot be UTF-8; fastim does.
            _check_utf8(ex, unmasked, final=False, what="the text so far")
        return
    ex.payload = unmasked
    if opcode == Opcode.CLOSE:
        _explain_close(ex, unmasked)
    elif opcode in (Opcode.PING, Opcode.PONG):
        _show_text(ex, unmasked)
        if opcode == Opcode.PING:
            ex.row("", "a receiver answers with a pong carrying this payload (§5.5.2)")
    elif opcode == Opcode.CONTINUATION:
        _show_text(ex, unmasked)
        ex.row(
            "",
            "valid only after a TEXT or BINARY frame with FIN=0; that frame says whether"
            " this is text (§5.4)",
        )
    else:
        message: bytes = unmasked
        if ex.data[0] & 0x40:  # RSV1 with permessage-deflate (others broke a rule above)
            assert deflate
            inflated = _inflate(ex, unmasked)
            if inflated is None:
                return
            message = inflated
        if opcode == Opcode.TEXT:
            what = "the text" if ex.fin else "the text so far"
            text = _check_utf8(ex, message, final=ex.fin, what=what)
            if text is not None:
                ex.row("  text", repr(text) if ex.fin else f"{text!r} (the message continues)")
                ex.message = text
        else:
            _show_text(ex, message)
            ex.message = message


def _inflate(ex: Explanation, payload: bytes) -> bytes | None:
    # RFC 7692 §7.2.2: append 00 00 ff ff and inflate as raw DEFLATE. A fresh decompressor
    # with the largest window reads any single message; PerMessageDeflate does the work.
    try:
        inflated = PerMessageDeflate().decompress(payload, ex.fin, ex.max_size)
    except ProtocolError as error:
        zlib_says = error.reason.rpartition(": ")[2]
        if error.code == CloseCode.MESSAGE_TOO_BIG:
            rule = f"the payload inflates to more than {ex.max_size} bytes, the receiver's limit"
            ex.violations.append(Violation(rule, "RFC 6455 §7.4.1", error.code))
            return None
        if "too far back" in zlib_says:
            # Not necessarily corrupt: with context takeover a message may copy bytes from
            # the ones before it (RFC 7692 §7.2.3.2), which a lone frame does not carry.
            rule = (
                f"the payload does not inflate on its own ({zlib_says}): it refers back to an"
                " earlier message (context takeover), which a receiver must have seen"
            )
        else:
            rule = f"the payload is not valid DEFLATE data ({zlib_says})"
        ex.violations.append(Violation(rule, "RFC 7692 §7.2.2", error.code))
        return None
    tail = " + 00 00 ff ff" if ex.fin else ""
    ex.row("  inflated", f"payload{tail}, inflated as raw DEFLATE (RFC 7692 §7.2.2):")
    _hex_rows(ex, "", inflated)
    return inflated


def _explain_close(ex: Explanation, payload: bytes) -> None:
    if not payload:
        ex.row("", "no status code: the receiver reports 1005 NO_STATUS_RCVD (§7.1.5)")
        return
    if len(payload) == 1:
        ex.violations.append(
            Violation(
                "a close payload is empty or starts with a 2-byte code, not 1 byte",
                "RFC 6455 §5.5.1",
                CloseCode.PROTOCOL_ERROR,
            )
        )
        return
    code = int.from_bytes(payload[:2], "big")
    ex.row("  code", f"{payload[:2].hex(' ')} = {code} {_close_code_meaning(code)}")
    if not is_valid_close_code(code):
        ex.violations.append(
            Violation(
                f"close code {code} may not be sent", "RFC 6455 §7.4", CloseCode.PROTOCOL_ERROR
            )
        )
        return
    reason = _check_utf8(ex, payload[2:], final=True, what="the close reason")
    if reason is None:
        return
    ex.row("  reason", repr(reason) if reason else "(none)")
    ex.row(
        "", f"a receiver that has not closed yet answers with a close frame, code {code} (§5.5.1)"
    )


def _close_code_meaning(code: int) -> str:
    if code in _CLOSE_CODES:
        name = CloseCode(code)
        return f"{name.name}: {_CLOSE_MEANING[name]}"
    if code == 1004:
        return "reserved (§7.4.1)"
    if 1016 <= code <= 2999:
        return "unassigned: reserved for future RFCs (§7.4.2)"
    if 3000 <= code <= 3999:
        return "for libraries and frameworks, registered with IANA (§7.4.2)"
    if 4000 <= code <= 4999:
        return "for private use by applications (§7.4.2)"
    return "outside the ranges of §7.4.2"


def _check_utf8(ex: Explanation, data: bytes, *, final: bool, what: str) -> str | None:
    """Decode UTF-8 as a receiver does (RFC 6455 §8.1); on failure add a 1007 violation."""
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    try:
        text = decoder.decode(data, final)
    except UnicodeDecodeError as error:
        bad = f"byte {error.start} of it ({data[error.start]:02x})"
        ex.violations.append(
            Violation(
                f"{what} is not valid UTF-8 at {bad}", "RFC 6455 §8.1", CloseCode.INVALID_DATA
            )
        )
        return None
    pending = decoder.getstate()[0]
    if len(pending) >= 2 and pending[0] == 0xED and pending[1] >= 0xA0:
        # ED A0..BF starts a UTF-16 surrogate, never valid UTF-8 (RFC 3629 §3); Python's
        # incremental decoder waits for a third byte before it says so.
        ex.violations.append(
            Violation(
                f"{what} is not valid UTF-8: ends in {pending.hex(' ')}, the start of a surrogate",
                "RFC 6455 §8.1",
                CloseCode.INVALID_DATA,
            )
        )
        return None
    return text


def _show_text(ex: Explanation, data: bytes) -> None:
    if not data:
        return
    # Binary data that is not UTF-8 is shown in hex only.
    with contextlib.suppress(UnicodeDecodeError):
        ex.row("  as text", repr(data.decode("utf-8")))


# -- formatting -------------------------------------------------------------------------------


def _hex_rows(ex: Explanation, where: str, data: bytes) -> None:
    shown = data[:SHOWN_BYTES]
    for i in range(0, len(shown), 16):
        ex.row(where if i == 0 else "", shown[i : i + 16].hex(" "))
    if len(data) > SHOWN_BYTES:
        ex.row("", f"... {_count(len(data) - SHOWN_BYTES, 'more byte')}")


def _bytes_at(start: int, count: int) -> str:
    """ "byte 4" or "bytes 2-5": the left column for `count` bytes from `start`."""
    return f"bytes {start}-{start + count - 1}" if count > 1 else f"byte {start}"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
