"""Close status codes (RFC 6455 §7.4), in a module of their own.

Both the errors (a ProtocolError carries the code the connection is failed with) and the
framing layer (a close frame's payload) name them; kept here, imported by both and
importing nothing, they leave no import circle between exceptions.py and frames.py.
`fastim.ws.frames.CloseCode` and `fastim.ws.CloseCode` are this same class.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["CloseCode"]


class CloseCode(IntEnum):
    """Close status codes (RFC 6455 §7.4.1, plus the IANA registry of §11.7)."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    # 1004 is reserved.
    NO_STATUS_RCVD = 1005  # never on the wire: "the close frame had no code"
    ABNORMAL_CLOSURE = 1006  # never on the wire: "TCP closed without a close frame"
    INVALID_DATA = 1007  # "invalid frame payload data", e.g. bad UTF-8 in a text message
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    BAD_GATEWAY = 1014
    TLS_HANDSHAKE = 1015  # never on the wire
