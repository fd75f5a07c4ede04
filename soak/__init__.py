"""`python -m soak`: the chat server under steady load and faults, nothing lost (docs/reliability.md).

Thousands of WebSocket clients on loopback chat 1:1 and in groups at a steady rate for
minutes, dropping and coming back at random; at the end every acked message must be
stored once and have reached every recipient device exactly once, in order, and the
server's memory must be flat after warm-up. docs/reliability.md has the figures.
"""
