"""The echo/broadcast servers the benchmark compares, one small module per library.

Each is started as `python -m bench.servers.NAME --port 0 [--deflate]`, runs on uvloop in one
process, and serves two paths:

- ``/echo``: sends every message back to its sender, text as text, binary as binary;
- ``/broadcast``: one room per process; every message received is sent to every member of
  the room, the sender included (the load generator paces itself on the sender's copy).

The HTTP servers (`NAME_http`, for fastim.http and aiohttp) serve ``/json``, a small JSON
answer (fastIM's envelope), and ``/static/``, the files of the directory given by
``--static``, each the library's idiomatic way.

When it listens it prints ``READY <port>`` on stdout; a server that cannot run prints
``UNSUPPORTED <reason>`` and exits with status 3, and the harness reports the row as n/a.
"""
