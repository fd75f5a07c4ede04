"""The app's configuration: command-line flags with FASTIM_* environment fallbacks."""

from __future__ import annotations

import argparse
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastim.accounts.contacts import FRIEND_REQUEST_TTL, FRIEND_REQUESTS_PER_DAY, GROUP_LIMIT
from fastim.accounts.passwords import DEFAULT_KDF, check_kdf
from fastim.accounts.service import MAX_SESSIONS, TOKEN_TTL
from fastim.chat.hub import HubOptions
from fastim.chat.lifecycle import LifecycleOptions
from fastim.chat.protocol import ChatLimits
from fastim.http import Limits, TrustedProxies
from fastim.media.options import MediaOptions
from fastim.notify.options import PushOptions

#: The checkout the package runs from (asset/ and views/ live beside fastim/).
PROJECT_DIR = Path(__file__).resolve().parent.parent

#: What a node may serve (`--role`).
ROLES = ("all", "api", "chat")
#: What --chat-compression takes (Config.chat_compression).
CHAT_COMPRESSION = ("per-connection", "shared")


def _project_path(name: str) -> Path:
    candidate = PROJECT_DIR / name
    return candidate if candidate.is_dir() else Path.cwd() / name


@dataclass
class Config:
    """Everything `fastim serve` needs to know.

    `db` and `redis` are URLs; an empty `db` means SQLite in `data_dir`, an empty
    `redis` means the in-process message bus. `role` splits the app between nodes
    sharing one database and one Redis (docs/scaling.md): ``api`` serves the REST API
    and the pages, ``chat`` the /chat WebSocket and the REST under /chat/, ``all`` both.
    """

    host: str = "127.0.0.1"
    port: int = 8081
    db: str = ""
    #: Seconds `fastim serve` keeps trying, at start, to reach a database server that is
    #: not up yet (a log line each attempt); 0 gives up at the first failure.
    db_wait: float = 30.0
    redis: str = ""
    role: str = "all"
    #: Seconds a node stays "alive" in Redis after its last heartbeat; its users count
    #: as online until then (heartbeats go out three times per period).
    node_ttl: float = 15.0
    #: Seconds a node keeps serving after SIGTERM while /healthz answers 503, so that a
    #: load balancer stops sending it new connections before it stops accepting.
    drain_delay: float = 0.0
    data_dir: Path = Path("data")
    #: Uploaded files, served under /resource/.
    resource_dir: Path = Path("resource")
    #: Static files (js, css, emoji), served under /asset/.
    asset_dir: Path = field(default_factory=lambda: _project_path("asset"))
    #: jinja2 templates.
    views_dir: Path = field(default_factory=lambda: _project_path("views"))
    access_log: bool = True
    limits: Limits = field(default_factory=Limits)
    #: Origins besides the server's own whose pages may open /chat (e.g. a separate
    #: front-end host); any other Origin gets 403.
    allowed_origins: tuple[str, ...] = ()
    #: The chat hub: rate limit, text limit, batch sizes (fastim/chat/hub.py).
    hub: HubOptions = field(default_factory=HubOptions)
    #: Bytes a chat device may fall behind before it is cut off as a slow reader.
    chat_outbound_buffer: int = 1024 * 1024
    #: Largest frame (message) a /chat client may send, bytes; more is closed with 1009.
    chat_max_frame: int = 64 * 1024
    #: /chat heartbeat: ping a client silent this long (None: never), and close it with
    #: 1011 when the pong takes longer than the timeout (fastim.ws Options).
    chat_ping_interval: float | None = 20.0
    chat_ping_timeout: float | None = 20.0
    #: permessage-deflate on /chat (RFC 7692): "per-connection" keeps each connection's
    #: compression context (fewest bytes on the wire); "shared" runs the server's side
    #: without context takeover (§7.1.1.1), so one compressed frame serves every member
    #: of a group (far less CPU per delivery, more bytes). docs/compression.md.
    chat_compression: str = "per-connection"
    #: Password hashing ("scrypt:n:r:p" or "pbkdf2_sha256:iterations", fastim.accounts.passwords).
    kdf: str = DEFAULT_KDF
    #: Seconds a login token stays valid, and tokens kept per user (the oldest go first).
    token_ttl: int = TOKEN_TTL
    max_sessions: int = MAX_SESSIONS
    #: Login attempts allowed per mobile number and per client address in `login_window`
    #: seconds (429 beyond). Shared by every node through Redis when `redis` is set.
    login_per_mobile: int = 5
    login_per_address: int = 20
    login_window: float = 900.0
    #: Registrations allowed per client address in `register_window` seconds (429
    #: beyond); shared through Redis like the login windows.
    register_per_address: int = 10
    register_window: float = 3600.0
    #: Groups one user may own.
    group_limit: int = GROUP_LIMIT
    #: New friend requests one user may make in 24 hours (429 beyond).
    friend_requests_per_day: int = FRIEND_REQUESTS_PER_DAY
    #: Seconds a friend request waits for an answer before it expires.
    friend_request_ttl: int = FRIEND_REQUEST_TTL
    #: Image uploads: size limit, downscale bound, thumbnail size, rate limit (docs/media.md).
    media: MediaOptions = field(default_factory=MediaOptions)
    #: PEM certificate chain and private key: serve HTTPS and wss:// on the same port.
    certfile: Path | None = None
    keyfile: Path | None = None
    #: Key file that seals chat message text at rest (`fastim keygen`); None: stored clear.
    message_key_file: Path | None = None
    #: Seconds browsers are told to use only HTTPS for this host (Strict-Transport-Security,
    #: RFC 6797), sent only when serving TLS; 0 sends no header.
    hsts_max_age: int = 180 * 24 * 3600
    #: Reverse proxies (IP addresses or networks, e.g. "127.0.0.1", "10.0.0.0/8") whose
    #: X-Forwarded-For / X-Forwarded-Proto or Forwarded fields name the client and its
    #: scheme (fastim/http/proxy.py); from any other peer those fields are ignored.
    trusted_proxies: tuple[str, ...] = ()
    #: The /learn wire inspector for learners (fastim/handlers/learn.py); `--no-learn`.
    learn: bool = True
    #: Web Push: preview, VAPID key file, which endpoints are allowed (docs/security.md).
    push: PushOptions = field(default_factory=PushOptions)

    @property
    def tls(self) -> bool:
        """Whether the server speaks TLS itself. Whether one request came over HTTPS is
        ``request.scheme`` (also "https" behind a trusted TLS-terminating proxy)."""
        return self.certfile is not None

    def security_headers(self) -> list[tuple[str, str]]:
        """Header fields for every response to a request that came over HTTPS
        (`Server(https_headers=)`): HSTS, never over plain HTTP (RFC 6797 §7.2: a host
        must not send it there, where an attacker could forge or strip it)."""
        if self.hsts_max_age <= 0:
            return []
        return [("Strict-Transport-Security", f"max-age={self.hsts_max_age}")]

    def ssl_context(self) -> ssl.SSLContext | None:
        """The server's TLS context when a certificate is configured (TLS 1.2 or newer,
        the ssl module's secure defaults for ciphers), else None for plain HTTP."""
        if self.certfile is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(self.certfile, self.keyfile)
        return context

    @property
    def database_url(self) -> str:
        """`db`, or the SQLite file ``<data_dir>/fastim.db`` as an absolute
        ``sqlite:////abs/path`` URL (three slashes, then the absolute path)."""
        if self.db:
            return self.db
        return "sqlite:///" + str((self.data_dir / "fastim.db").resolve())

    @property
    def upload_tmp_dir(self) -> Path:
        """Where multipart uploads are written while they arrive."""
        return self.data_dir / "tmp"


def add_serve_arguments(
    parser: argparse.ArgumentParser, environ: Mapping[str, str] | None = None
) -> None:
    """Add the `serve` flags, each defaulting to its FASTIM_* environment variable."""
    env = os.environ if environ is None else environ
    defaults = Config()
    parser.add_argument("--host", default=env.get("FASTIM_HOST", defaults.host),
                        help="address to listen on (FASTIM_HOST, default %(default)s)")
    parser.add_argument("--port", type=int, default=_env_number(env, "FASTIM_PORT", defaults.port),
                        help="port to listen on, 0 for any free port "
                             "(FASTIM_PORT, default %(default)s)")
    parser.add_argument("--db", default=env.get("FASTIM_DB", ""),
                        help="database URL, e.g. mysql://root:@127.0.0.1:3306/fastim "
                             "(FASTIM_DB, default: SQLite file in the data dir)")
    parser.add_argument("--db-wait", type=float,
                        default=_env_number(env, "FASTIM_DB_WAIT", defaults.db_wait, float),
                        help="seconds to keep trying at start while the database server "
                             "cannot be reached, with a log line each attempt; 0 gives up "
                             "at once (FASTIM_DB_WAIT, default %(default)s)")
    parser.add_argument("--redis", default=env.get("FASTIM_REDIS", ""),
                        help="Redis URL for the message bus, e.g. redis://127.0.0.1:6379/0 "
                             "(FASTIM_REDIS, default: in-process)")
    parser.add_argument("--role", choices=ROLES, default=env.get("FASTIM_ROLE", defaults.role),
                        help="what this node serves: api (REST and pages), chat (/chat), "
                             "or all (FASTIM_ROLE, default %(default)s; api and chat "
                             "need --redis)")
    parser.add_argument("--chat-compression", choices=CHAT_COMPRESSION,
                        default=env.get("FASTIM_CHAT_COMPRESSION", defaults.chat_compression),
                        help="permessage-deflate on /chat: per-connection contexts (fewest "
                             "bytes) or shared, one compressed frame per group message "
                             "(least CPU) (FASTIM_CHAT_COMPRESSION, default %(default)s)")
    parser.add_argument("--node-ttl", type=float,
                        default=_env_number(env, "FASTIM_NODE_TTL", defaults.node_ttl, float),
                        help="seconds after a node's last heartbeat that its users stop "
                             "being online (FASTIM_NODE_TTL, default %(default)s)")
    parser.add_argument("--drain-delay", type=float,
                        default=_env_number(env, "FASTIM_DRAIN_DELAY", defaults.drain_delay,
                                            float),
                        help="seconds to keep serving after SIGTERM while /healthz answers "
                             "503, before closing (set it above the load balancer's check "
                             "interval; FASTIM_DRAIN_DELAY, default %(default)s)")
    parser.add_argument("--data-dir", type=Path,
                        default=Path(env.get("FASTIM_DATA_DIR", str(defaults.data_dir))),
                        help="directory for the SQLite file and temporary uploads "
                             "(FASTIM_DATA_DIR, default %(default)s)")
    parser.add_argument("--resource-dir", type=Path,
                        default=Path(env.get("FASTIM_RESOURCE_DIR", str(defaults.resource_dir))),
                        help="directory of uploaded files (FASTIM_RESOURCE_DIR, "
                             "default %(default)s)")
    origins = env.get("FASTIM_ALLOWED_ORIGINS", "")
    parser.add_argument("--allowed-origin", action="append", dest="allowed_origins",
                        default=[o.strip() for o in origins.split(",") if o.strip()],
                        help="an Origin besides the server's own that may open /chat and "
                             "make changes with the session cookie; "
                             "repeatable (FASTIM_ALLOWED_ORIGINS, comma-separated)")
    proxies = env.get("FASTIM_TRUSTED_PROXIES", "")
    parser.add_argument("--trusted-proxy", action="append", dest="trusted_proxies",
                        default=[p.strip() for p in proxies.split(",") if p.strip()],
                        help="a reverse proxy (IP address or network, e.g. 127.0.0.1 or "
                             "10.0.0.0/8) whose X-Forwarded-For / X-Forwarded-Proto or "
                             "Forwarded fields are believed; repeatable "
                             "(FASTIM_TRUSTED_PROXIES, comma-separated; default none)")
    parser.add_argument("--certfile", type=Path, default=_env_path(env, "FASTIM_CERTFILE"),
                        help="PEM certificate (chain) to serve HTTPS and wss:// "
                             "(FASTIM_CERTFILE, default: plain HTTP)")
    parser.add_argument("--keyfile", type=Path, default=_env_path(env, "FASTIM_KEYFILE"),
                        help="PEM private key of --certfile, if not in the same file "
                             "(FASTIM_KEYFILE)")
    parser.add_argument("--message-key-file", type=Path,
                        default=_env_path(env, "FASTIM_MESSAGE_KEY_FILE"),
                        help="key file (made by `fastim keygen`) that encrypts chat message "
                             "text in the database (FASTIM_MESSAGE_KEY_FILE, default: "
                             "stored in clear)")
    parser.add_argument("--hsts-max-age", type=int,
                        default=_env_number(env, "FASTIM_HSTS_MAX_AGE", defaults.hsts_max_age),
                        help="Strict-Transport-Security max-age in seconds, sent only over "
                             "HTTPS (--certfile, or a trusted proxy's X-Forwarded-Proto); "
                             "0 sends none (FASTIM_HSTS_MAX_AGE, "
                             "default %(default)s = 180 days)")

    parser.add_argument("--no-learn", dest="learn", action="store_false",
                        default=env.get("FASTIM_LEARN", "1") != "0",
                        help="turn off /learn, the wire inspector for learners "
                             "(FASTIM_LEARN=0; default on)")
    parser.add_argument("--push-preview", action="store_true",
                        default=env.get("FASTIM_PUSH_PREVIEW", "0") == "1",
                        help="Web Push carries the beginning of the message's text, not "
                             "only who sent it; refused with --message-key-file "
                             "(FASTIM_PUSH_PREVIEW=1; default off)")
    parser.add_argument("--vapid-key-file", type=Path,
                        default=_env_path(env, "FASTIM_VAPID_KEY_FILE"),
                        help="the VAPID key pair signing Web Push (RFC 8292), made there "
                             "on first start; every node of a cluster must share it "
                             "(FASTIM_VAPID_KEY_FILE, default DATA_DIR/vapid-private.pem)")
    parser.add_argument("--push-subject", default=env.get("FASTIM_PUSH_SUBJECT",
                                                          PushOptions.subject),
                        help="how push services reach the operator: a mailto: or https: "
                             "URL (RFC 8292 sub; FASTIM_PUSH_SUBJECT, default %(default)s)")
    parser.add_argument("--push-allow-private", action="store_true",
                        default=env.get("FASTIM_PUSH_ALLOW_PRIVATE", "0") == "1",
                        help="allow push endpoints on private and link-local addresses "
                             "(a push service on one's own network; default refused)")
    parser.add_argument("--push-allow-http-loopback", action="store_true",
                        default=env.get("FASTIM_PUSH_ALLOW_HTTP_LOOPBACK", "0") == "1",
                        help="TESTS AND DEVELOPMENT ONLY: allow push endpoints on a "
                             "loopback address, over http:// too (a push-service stand-in)")

    def limit(flag: str, kind: type, default: Any, text: str) -> None:
        name = "FASTIM_" + flag.removeprefix("--").replace("-", "_").upper()
        parser.add_argument(flag, type=kind, default=_env_number(env, name, default, kind),
                            help=f"{text} ({name}, default %(default)s)")

    # Accounts (fastim/accounts).
    parser.add_argument("--kdf", default=env.get("FASTIM_KDF") or defaults.kdf,
                        help="password hashing, scrypt:N:r:p or pbkdf2_sha256:ITERATIONS; "
                             "raising it re-hashes each password at its next login "
                             "(FASTIM_KDF, default %(default)s)")
    limit("--token-ttl", int, defaults.token_ttl, "seconds a login token stays valid")
    limit("--max-sessions", int, defaults.max_sessions,
          "login tokens kept per user; the oldest go first")
    limit("--login-per-mobile", int, defaults.login_per_mobile,
          "login attempts per mobile number in --login-window (429 beyond)")
    limit("--login-per-address", int, defaults.login_per_address,
          "login attempts per client address in --login-window (429 beyond)")
    limit("--login-window", float, defaults.login_window,
          "seconds of the login attempt windows")
    limit("--register-per-address", int, defaults.register_per_address,
          "registrations per client address in --register-window (429 beyond)")
    limit("--register-window", float, defaults.register_window,
          "seconds of the registration window")
    limit("--group-limit", int, defaults.group_limit, "groups one user may own")
    limit("--friend-requests-per-day", int, defaults.friend_requests_per_day,
          "new friend requests one user may make in 24 hours (429 beyond)")
    limit("--friend-request-ttl", int, defaults.friend_request_ttl,
          "seconds a friend request waits for an answer before it expires")
    # HTTP (fastim/http/server.py Limits).
    http = defaults.limits
    limit("--max-request-line", int, http.max_request_line,
          "longest request line in bytes (414 beyond)")
    limit("--max-header-size", int, http.max_header_size,
          "largest request head in bytes (431 beyond)")
    limit("--max-header-count", int, http.max_header_count,
          "most header fields in a request (431 beyond)")
    limit("--max-body-size", int, http.max_body_size,
          "largest request body in bytes where the route sets none (413 beyond)")
    limit("--header-timeout", float, http.header_timeout,
          "seconds to send a whole request head (408 beyond)")
    limit("--body-timeout", float, http.body_timeout,
          "seconds to send a request body where the route sets none (408 beyond)")
    limit("--keep-alive-timeout", float, http.keep_alive_timeout,
          "seconds an idle keep-alive connection is kept open")
    limit("--write-timeout", float, http.write_timeout,
          "seconds a client may leave its answers unread before it is cut off")
    # Uploads (fastim/media/options.py).
    media = defaults.media
    limit("--upload-max-bytes", int, media.max_upload_bytes,
          "largest uploaded file in bytes (413 beyond)")
    limit("--upload-max-pixels", int, media.max_pixels,
          "most pixels of one image frame (413 beyond: a decompression bomb)")
    limit("--upload-max-frames", int, media.max_frames,
          "most frames of an animated image (413 beyond)")
    limit("--upload-rate", int, media.rate_limit,
          "uploads one user may make per --upload-rate-window (429 beyond)")
    limit("--upload-rate-window", float, media.rate_window,
          "seconds of the upload rate window")
    limit("--voice-max-seconds", float, media.voice_max_seconds,
          "longest voice message in seconds, as read from the recording (413 beyond)")
    limit("--file-max-bytes", int, media.file_max_bytes,
          "largest file sent in a chat, bytes (413 beyond)")
    limit("--upload-quota-bytes", int, media.upload_quota_bytes,
          "bytes of voice messages and files one user may upload in all (413 beyond)")
    # The /chat WebSocket.
    limit("--chat-outbound-buffer", int, defaults.chat_outbound_buffer,
          "bytes a chat device may fall behind before it is closed with 1008")
    limit("--chat-max-frame", int, defaults.chat_max_frame,
          "largest frame a chat client may send, bytes (closed with 1009 beyond)")
    limit("--chat-ping-interval", float, defaults.chat_ping_interval,
          "seconds of silence before /chat pings a client; 0 never pings")
    limit("--chat-ping-timeout", float, defaults.chat_ping_timeout,
          "seconds a ping's pong may take before the connection is closed with 1011")
    hub = defaults.hub
    limit("--edit-window", float, hub.lifecycle.edit_window,
          "seconds after sending during which a text message may be edited")
    limit("--recall-window", float, hub.lifecycle.recall_window,
          "seconds after sending during which the sender may recall a message "
          "(a group's owner may at any time)")
    limit("--chat-rate", float, hub.rate,
          "chat messages a second one user may send (all devices, all nodes), in bursts "
          "of up to twice that")
    limit("--chat-max-text", int, hub.limits.max_text,
          "longest text message in characters")
    limit("--max-connections-per-user", int, hub.max_connections_per_user,
          "chat connections one user may hold on a node; more are refused with 429")


def config_from_args(args: argparse.Namespace) -> Config:
    """A Config from parsed `serve` arguments."""
    if args.role not in ROLES:  # argparse checks the flag's choices, not the env default
        raise SystemExit(f"--role must be one of {', '.join(ROLES)}, not {args.role!r}")
    if args.role != "all" and not args.redis:
        # An api node tells chat nodes of contact changes over Redis; without it their
        # friend and member caches would go stale.
        raise SystemExit(f"--role {args.role} needs --redis (nodes share it)")
    if args.chat_compression not in CHAT_COMPRESSION:  # the env default is not checked
        raise SystemExit(f"--chat-compression must be one of {', '.join(CHAT_COMPRESSION)}, "
                         f"not {args.chat_compression!r}")
    if args.node_ttl <= 0:
        raise SystemExit("--node-ttl must be positive")
    if args.drain_delay < 0:
        raise SystemExit("--drain-delay must not be negative")
    for name in ("token_ttl", "max_sessions", "login_per_mobile", "login_per_address",
                 "login_window", "register_per_address", "register_window", "group_limit",
                 "friend_requests_per_day", "friend_request_ttl", "max_request_line",
                 "max_header_size",
                 "max_header_count", "max_body_size", "header_timeout", "body_timeout",
                 "keep_alive_timeout", "write_timeout", "upload_max_bytes", "upload_max_pixels",
                 "upload_max_frames", "upload_rate", "upload_rate_window",
                 "voice_max_seconds", "file_max_bytes", "upload_quota_bytes",
                 "chat_outbound_buffer", "chat_max_frame", "chat_ping_timeout", "chat_rate",
                 "chat_max_text", "max_connections_per_user"):
        _check_positive(args, name)
    for name in ("hsts_max_age", "chat_ping_interval", "db_wait", "edit_window",
                 "recall_window"):
        if not getattr(args, name) >= 0:  # also refuses NaN
            raise SystemExit(f"--{name.replace('_', '-')} must be 0 or more, "
                             f"not {getattr(args, name)}")
    try:
        TrustedProxies(args.trusted_proxies)
    except ValueError as exc:
        raise SystemExit(f"--trusted-proxy: {exc}") from None
    try:
        kdf = check_kdf(args.kdf)
    except ValueError as exc:
        raise SystemExit(f"--kdf: {exc}") from None
    try:
        media = MediaOptions(max_upload_bytes=args.upload_max_bytes,
                             max_pixels=args.upload_max_pixels,
                             max_frames=args.upload_max_frames,
                             rate_limit=args.upload_rate, rate_window=args.upload_rate_window,
                             voice_max_seconds=args.voice_max_seconds,
                             file_max_bytes=args.file_max_bytes,
                             upload_quota_bytes=args.upload_quota_bytes)
    except ValueError as exc:
        raise SystemExit(f"upload limits: {exc}") from None
    if args.push_preview and args.message_key_file:
        raise SystemExit("--push-preview would send message text out of a server that "
                         "--message-key-file keeps sealed at rest: use one or the other")
    if not args.push_subject.startswith(("mailto:", "https://")):
        raise SystemExit("--push-subject must be a mailto: or https:// URL (RFC 8292 §2.1), "
                         f"not {args.push_subject!r}")
    push = PushOptions(preview=args.push_preview, key_file=args.vapid_key_file,
                       subject=args.push_subject, allow_private=args.push_allow_private,
                       allow_http_loopback=args.push_allow_http_loopback)
    return Config(
        host=args.host,
        port=args.port,
        db=args.db,
        db_wait=args.db_wait,
        redis=args.redis,
        role=args.role,
        node_ttl=args.node_ttl,
        drain_delay=args.drain_delay,
        data_dir=args.data_dir,
        resource_dir=args.resource_dir,
        allowed_origins=tuple(args.allowed_origins),
        trusted_proxies=tuple(args.trusted_proxies),
        certfile=args.certfile,
        keyfile=args.keyfile,
        message_key_file=args.message_key_file,
        hsts_max_age=args.hsts_max_age,
        hub=HubOptions(rate=args.chat_rate, burst=2 * args.chat_rate,
                       max_connections_per_user=args.max_connections_per_user,
                       limits=ChatLimits(max_text=args.chat_max_text),
                       lifecycle=LifecycleOptions(edit_window=args.edit_window,
                                                  recall_window=args.recall_window)),
        kdf=kdf,
        token_ttl=args.token_ttl,
        max_sessions=args.max_sessions,
        login_per_mobile=args.login_per_mobile,
        login_per_address=args.login_per_address,
        login_window=args.login_window,
        register_per_address=args.register_per_address,
        register_window=args.register_window,
        group_limit=args.group_limit,
        friend_requests_per_day=args.friend_requests_per_day,
        friend_request_ttl=args.friend_request_ttl,
        limits=Limits(max_request_line=args.max_request_line,
                      max_header_size=args.max_header_size,
                      max_header_count=args.max_header_count,
                      max_body_size=args.max_body_size,
                      header_timeout=args.header_timeout,
                      body_timeout=args.body_timeout,
                      keep_alive_timeout=args.keep_alive_timeout,
                      write_timeout=args.write_timeout),
        media=media,
        chat_outbound_buffer=args.chat_outbound_buffer,
        chat_max_frame=args.chat_max_frame,
        chat_ping_interval=args.chat_ping_interval or None,
        chat_ping_timeout=args.chat_ping_timeout,
        chat_compression=args.chat_compression,
        learn=args.learn,
        push=push,
    )


def _check_positive(args: argparse.Namespace, name: str) -> None:
    value = getattr(args, name)
    if not value > 0:  # also refuses NaN
        raise SystemExit(f"--{name.replace('_', '-')} must be positive, not {value}")


def _env_number(env: Mapping[str, str], name: str, default: Any, kind: type = int) -> Any:
    """The variable `name` read as `kind` (int or float), or `default` when unset."""
    value = env.get(name)
    if value is None or value == "":
        return default
    try:
        return kind(value)
    except ValueError:
        what = "an integer" if kind is int else "a number"
        raise SystemExit(f"{name} must be {what}, not {value!r}") from None


def _env_path(env: Mapping[str, str], name: str) -> Path | None:
    value = env.get(name)
    return Path(value) if value else None
