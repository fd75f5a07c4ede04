"""fastim: a hand-written RFC 6455 WebSocket library and an instant-messaging app on it."""

__version__ = "0.1.0"
