"""Type stub of the optional C extension fastim/ws/_speedups.c."""

def mask(data: bytes | bytearray | memoryview, key: bytes | bytearray, /) -> bytes:
    """XOR `data` with the 4-byte `key` repeated (RFC 6455 §5.3)."""
