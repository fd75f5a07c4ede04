"""Behind a reverse proxy: the client's address and scheme from trusted forwarding fields.

Unit tests of fastim/http/proxy.py, then the app on real loopback sockets: the login
throttle per forwarded client, a spoofed field from an untrusted peer ignored, the Secure
cookie and HSTS from a trusted X-Forwarded-Proto, the /chat Origin check and the access log.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from fastim.http import Headers, Request, Response, Router, Server, TrustedProxies
from fastim.http.proxy import parse_address, parse_forwarded, resolve_client
from fastim.ws import InvalidHandshake, connect
from tests.store_fixtures import ApiServer, Reply, api_config

LOOPBACK = "127.0.0.1"
TRUST_LOOPBACK = TrustedProxies([LOOPBACK])
HSTS = f"max-age={180 * 24 * 3600}"


def resolve(peer: str, fields: list[tuple[str, str]],
            trusted: TrustedProxies = TRUST_LOOPBACK, scheme: str = "http") -> tuple[str, str]:
    client = resolve_client(peer, scheme, Headers(fields), trusted)
    return client.addr, client.scheme


# -- parsing ------------------------------------------------------------------------------


def test_trusted_proxies_take_addresses_and_networks_and_refuse_the_rest() -> None:
    trusted = TrustedProxies(["127.0.0.1", "10.0.0.0/8", "::1", "fd00::/8"])
    assert trusted.trusts("127.0.0.1") and trusted.trusts("10.200.3.4")
    assert trusted.trusts("::1") and trusted.trusts("fd00::17")
    assert trusted.trusts("::ffff:10.0.0.1")  # an IPv4 peer on a dual-stack socket
    assert not trusted.trusts("127.0.0.2") and not trusted.trusts("11.0.0.1")
    assert not trusted.trusts("") and not trusted.trusts("localhost")
    assert not TrustedProxies()
    for bad in ("localhost", "10.0.0.0/33", "1.2.3", "", "127.0.0.1,10.0.0.1"):
        with pytest.raises(ValueError, match="not an IP address or network"):
            TrustedProxies([bad])


def test_node_addresses_with_and_without_ports() -> None:
    assert str(parse_address("203.0.113.7")) == "203.0.113.7"
    assert str(parse_address(" 203.0.113.7:4711 ")) == "203.0.113.7"
    assert str(parse_address("2001:db8::1")) == "2001:db8::1"
    assert str(parse_address("[2001:db8::1]")) == "2001:db8::1"
    assert str(parse_address("[2001:db8::1]:4711")) == "2001:db8::1"
    assert str(parse_address("::ffff:192.0.2.1")) == "192.0.2.1"
    for bad in ("", "unknown", "_hidden", "203.0.113.7:port", "[2001:db8::1", "[::1]x",
                "example.com", "203.0.113.300", "1.2.3.4:5:6x"):
        assert parse_address(bad) is None, bad


def test_forwarded_field_parsing() -> None:
    assert parse_forwarded(['for=192.0.2.60;proto=http;by=203.0.113.43']) == [
        {"for": "192.0.2.60", "proto": "http", "by": "203.0.113.43"}]
    assert parse_forwarded(['For="[2001:db8:cafe::17]:4711", for=10.0.0.1',
                            "for=10.0.0.2;PROTO=https"]) == [
        {"for": "[2001:db8:cafe::17]:4711"}, {"for": "10.0.0.1"},
        {"for": "10.0.0.2", "proto": "https"}]
    assert parse_forwarded(['for="a,b;c"']) == [{"for": "a,b;c"}]  # quoted separators
    for bad in ('for="1.2.3.4', "for", "for=", "=1.2.3.4", "for=1.2.3.4;for=5.6.7.8",
                "for=1.2.3.4,,for=5.6.7.8", "", 'for="x'):
        assert parse_forwarded([bad]) is None, bad


def test_an_untrusted_peer_is_the_client_whatever_it_sends() -> None:
    spoofed = [("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Proto", "https"),
               ("Forwarded", "for=198.51.100.1;proto=https")]
    assert resolve("192.0.2.1", spoofed) == ("192.0.2.1", "http")
    assert resolve(LOOPBACK, spoofed, TrustedProxies()) == (LOOPBACK, "http")
    # The connection's own scheme stands (our TLS).
    assert resolve("192.0.2.1", spoofed, scheme="https") == ("192.0.2.1", "https")


def test_x_forwarded_for_walks_from_the_right_past_trusted_proxies() -> None:
    trusted = TrustedProxies(["127.0.0.1", "10.0.0.0/8"])
    assert resolve(LOOPBACK, [("X-Forwarded-For", "203.0.113.7")]) == ("203.0.113.7", "http")
    # Chained proxies: each appends its peer; the first untrusted from the right is the client,
    # and what the client put on the left is never read.
    chain = [("X-Forwarded-For", "1.1.1.1, 203.0.113.7, 10.0.0.2, 10.0.0.3")]
    assert resolve(LOOPBACK, chain, trusted) == ("203.0.113.7", "http")
    # Only loopback trusted: 10.0.0.3 is the client (it could have written the rest).
    assert resolve(LOOPBACK, chain) == ("10.0.0.3", "http")
    # Two field lines are one list (RFC 9110 §5.3).
    lines = [("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-For", "10.0.0.2")]
    assert resolve(LOOPBACK, lines, trusted) == ("203.0.113.7", "http")
    # Every hop a trusted proxy: the leftmost is the client.
    assert resolve(LOOPBACK, [("X-Forwarded-For", "10.0.0.9, 10.0.0.2")], trusted) == (
        "10.0.0.9", "http")
    # Ports and IPv6 forms.
    assert resolve(LOOPBACK, [("X-Forwarded-For", "[2001:db8::7]:51000")]) == (
        "2001:db8::7", "http")
    # No field: the proxy itself is the client.
    assert resolve(LOOPBACK, []) == (LOOPBACK, "http")


def test_x_forwarded_proto_gives_the_scheme_of_the_clients_hop() -> None:
    trusted = TrustedProxies(["127.0.0.1", "10.0.0.0/8"])
    one = [("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Proto", "HTTPS")]
    assert resolve(LOOPBACK, one) == ("203.0.113.7", "https")
    # Appended per hop: the position of the client's entry names its scheme.
    appended = [("X-Forwarded-For", "203.0.113.7, 10.0.0.2"),
                ("X-Forwarded-Proto", "https, http")]
    assert resolve(LOOPBACK, appended, trusted) == ("203.0.113.7", "https")
    # The proxy says only the scheme.
    assert resolve(LOOPBACK, [("X-Forwarded-Proto", "https")]) == (LOOPBACK, "https")


def test_malformed_or_ambiguous_fields_fall_back_to_the_peer() -> None:
    for fields in (
        [("X-Forwarded-For", "not-an-address")],
        [("X-Forwarded-For", "203.0.113.7, garbage")],
        [("X-Forwarded-For", "203.0.113.7,,")],
        [("X-Forwarded-For", "")],
        [("X-Forwarded-For", "unknown")],
        [("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Proto", "ftp")],
        [("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Proto", "https, http, http")],
        [("Forwarded", 'for="203.0.113.7')],
        [("Forwarded", "proto=https")],  # an element without for=
        [("Forwarded", "for=203.0.113.7;proto=gopher")],
        [("Forwarded", "for=_hidden")],
        # Both kinds at once: the one our proxy does not write came from the client.
        [("Forwarded", "for=203.0.113.7"), ("X-Forwarded-For", "198.51.100.1")],
        [("Forwarded", "for=203.0.113.7"), ("X-Forwarded-Proto", "https")],
    ):
        assert resolve(LOOPBACK, fields) == (LOOPBACK, "http"), fields
    # What the client wrote left of the client's entry is never read.
    assert resolve(LOOPBACK, [("X-Forwarded-For", "garbage, 203.0.113.7")]) == (
        "203.0.113.7", "http")


def test_the_forwarded_field() -> None:
    trusted = TrustedProxies(["127.0.0.1", "10.0.0.0/8"])
    assert resolve(LOOPBACK, [("Forwarded", "for=203.0.113.7;proto=https")]) == (
        "203.0.113.7", "https")
    assert resolve(LOOPBACK, [("Forwarded", 'for="[2001:db8::7]:4711"')]) == (
        "2001:db8::7", "http")
    chain = [("Forwarded", "for=198.51.100.1;proto=http, for=203.0.113.7;proto=https, "
                           "for=10.0.0.2;proto=http")]
    assert resolve(LOOPBACK, chain, trusted) == ("203.0.113.7", "https")


# -- the HTTP layer: request.remote_addr and request.scheme, per request --------------------


def test_the_server_option_sets_remote_addr_and_scheme_per_request() -> None:
    router = Router()

    async def whoami(request: Request) -> Response:
        return Response(f"{request.remote_addr} {request.scheme}")

    router.get("/whoami")(whoami)

    async def scenario() -> list[str]:
        seen = []
        for trusted in ([], ["127.0.0.1"]):
            server = Server(router, trusted_proxies=trusted,
                            https_headers=[("Strict-Transport-Security", "max-age=60")])
            await server.start(LOOPBACK, 0)
            try:
                reader, writer = await asyncio.open_connection(LOOPBACK, server.port)
                # Two requests on one keep-alive connection: each is resolved on its own.
                writer.write(b"GET /whoami HTTP/1.1\r\nHost: x\r\n"
                             b"X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\n\r\n"
                             b"GET /whoami HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                answer = (await asyncio.wait_for(reader.read(), 10)).decode()
                writer.close()
                for response in answer.split("HTTP/1.1 200 OK")[1:]:
                    head, _, body = response.partition("\r\n\r\n")
                    seen.append(body.split("HTTP/")[0].strip() +
                                (" hsts" if "Strict-Transport-Security" in head else ""))
            finally:
                await server.shutdown()
        return seen

    assert asyncio.run(scenario()) == [
        "127.0.0.1 http", "127.0.0.1 http",  # not trusted: the fields mean nothing
        "203.0.113.7 https hsts", "127.0.0.1 http",
    ]


# -- the app: login throttle, cookie, HSTS, Origin, access log ------------------------------


def proxied_api(tmp_path: Path, trusted: tuple[str, ...]) -> ApiServer:
    config = api_config(f"sqlite:///{tmp_path}/fastim.db", tmp_path)
    config.trusted_proxies = trusted
    config.login_per_address = 5
    config.login_per_mobile = 100
    config.kdf = "pbkdf2_sha256:1000"  # cheap: these tests count attempts, not hashes
    return ApiServer(config)


def login_from(api: ApiServer, attempt: int, fields: dict[str, str]) -> Reply:
    """A failed login for a new unknown number each time: only the address window counts."""
    mobile = f"1390000{attempt:04d}"
    return api.post("/user/login", {"mobile": mobile, "passwd": "wrong password"},
                    headers=fields)


def test_behind_a_trusted_proxy_each_forwarded_client_has_its_own_window(
        tmp_path: Path) -> None:
    with proxied_api(tmp_path, ("127.0.0.1",)) as api:
        first = {"X-Forwarded-For": "203.0.113.7"}
        second = {"X-Forwarded-For": "203.0.113.8"}
        for attempt in range(5):
            assert login_from(api, attempt, first).status == 401
        assert login_from(api, 5, first).status == 429
        # Another client behind the same proxy still gets through.
        assert login_from(api, 6, second).status == 401
        # A client cannot escape by adding its own entry on the left: the proxy appends
        # the real address, and that is the one that counts.
        assert login_from(api, 7, {"X-Forwarded-For": "198.51.100.9, 203.0.113.7"}).status \
            == 429


def test_without_the_flag_a_spoofed_header_does_not_escape_the_throttle(
        tmp_path: Path) -> None:
    with proxied_api(tmp_path, ()) as api:
        for attempt in range(5):
            spoofed = {"X-Forwarded-For": f"203.0.113.{attempt}"}
            assert login_from(api, attempt, spoofed).status == 401
        assert login_from(api, 5, {"X-Forwarded-For": "203.0.113.99"}).status == 429
        assert login_from(api, 6, {"Forwarded": "for=203.0.113.98"}).status == 429


def test_a_trusted_proxy_that_says_https_gets_a_secure_cookie_and_hsts(tmp_path: Path) -> None:
    with proxied_api(tmp_path, ("127.0.0.0/8",)) as api:
        user = api.register()
        credentials = {"mobile": user["mobile"], "passwd": user["passwd"]}
        https = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
        reply = api.post("/user/login", credentials, headers=https)
        assert reply.status == 200
        cookie = reply.header("Set-Cookie") or ""
        assert cookie.startswith("fastim_token=") and "; Secure" in cookie
        assert reply.header("Strict-Transport-Security") == HSTS
        token = reply.data["token"]
        for path in ("/login", "/no/such/page"):
            assert api.get(path, headers=https).header("Strict-Transport-Security") == HSTS
        # A stale cookie is cleared with Secure too; logout's clearing as well.
        stale = api.get("/user/me", headers={**https, "Cookie": "fastim_token=stale"})
        assert stale.status == 401 and "; Secure" in (stale.header("Set-Cookie") or "")
        out = api.post("/user/logout", token=token, headers=https)
        assert out.status == 200 and "Secure" in (out.header("Set-Cookie") or "")
        # The same proxy forwarding plain HTTP: neither.
        plain = api.post("/user/login", credentials,
                         headers={"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "http"})
        assert "Secure" not in (plain.header("Set-Cookie") or "")
        assert plain.header("Strict-Transport-Security") is None


def test_an_untrusted_peer_saying_https_gets_neither(tmp_path: Path) -> None:
    with proxied_api(tmp_path, ("10.0.0.0/8",)) as api:
        user = api.register()
        reply = api.post("/user/login", {"mobile": user["mobile"], "passwd": user["passwd"]},
                         headers={"X-Forwarded-Proto": "https",
                                  "Forwarded": "for=203.0.113.7;proto=https"})
        assert reply.status == 200
        assert "Secure" not in (reply.header("Set-Cookie") or "")
        assert reply.header("Strict-Transport-Security") is None
        assert api.get("/login", headers={"X-Forwarded-Proto": "https"}).header(
            "Strict-Transport-Security") is None


def test_the_chat_origin_check_uses_the_forwarded_scheme(tmp_path: Path) -> None:
    with proxied_api(tmp_path, ("127.0.0.1",)) as api:
        _, token = api.user_with_token()
        url = f"ws://127.0.0.1:{api.port}/chat?token={token}"
        host = f"127.0.0.1:{api.port}"

        async def status_of(origin: str, proto: str) -> int:
            try:
                connection = await connect(url, origin=origin, extra_headers=[
                    ("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Proto", proto)])
            except InvalidHandshake as exc:
                return exc.status
            await connection.close()
            return 101

        assert asyncio.run(status_of(f"https://{host}", "https")) == 101
        # The page was served over HTTPS by the proxy: an http:// origin is another site.
        assert asyncio.run(status_of(f"http://{host}", "https")) == 403
        assert asyncio.run(status_of(f"http://{host}", "http")) == 101


def test_the_access_log_shows_the_forwarded_client(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="fastim.access")
    with proxied_api(tmp_path, ("127.0.0.1",)) as api:
        assert api.get("/login", headers={"X-Forwarded-For": "203.0.113.7"}).status == 200
        assert api.get("/login?from=untrusted").status == 200
    lines = [r.getMessage() for r in caplog.records if r.name == "fastim.access"]
    assert any(line.startswith('203.0.113.7 "GET /login HTTP/1.1" 200') for line in lines)
    assert any(line.startswith('127.0.0.1 "GET /login?from=untrusted') for line in lines)
