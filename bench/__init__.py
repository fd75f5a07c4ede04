"""fastim's WebSocket benchmark (docs/performance.md): `python -m bench` or `make bench`.

A compiled Go load generator (bench/loadgen, on gorilla/websocket) pinned to one core drives
one server process at a time (bench/servers: fastim.ws, websockets, aiohttp, picows, all on
uvloop) pinned to the other; the harness records throughput, latency and the server's CPU
time per message, and reports medians and ratios to fastim.
"""
