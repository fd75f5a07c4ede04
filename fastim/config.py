"""The app's configuration: command-line flags with FASTIM_* environment fallbacks."""

from __future__ import annotations

import argparse
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fastim.chat.hub import HubOptions
from fastim.chat.protocol import ChatLimits
from fastim.http import Limits
from fastim.media.options import MediaOptions

#: The checkout the package runs from (asset/ and views/ live beside fastim/).
PROJECT_DIR = Path(__file__).resolve().parent.parent

#: What a node may serve (`--role`).
ROLES = ("all", "api", "chat")


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
    redis: str = ""
    role: str = "all"
    #: Seconds a node stays "alive" in Redis after its last heartbeat; its users count
    #: as online until then (heartbeats go out three times per period).
    node_ttl: float = 15.0
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
    #: Image uploads: size limit, downscale bound, thumbnail size, rate limit (docs/media.md).
    media: MediaOptions = field(default_factory=MediaOptions)
    #: PEM certificate chain and private key: serve HTTPS and wss:// on the same port.
    certfile: Path | None = None
    keyfile: Path | None = None
    #: Seconds browsers are told to use only HTTPS for this host (Strict-Transport-Security,
    #: RFC 6797), sent only when serving TLS; 0 sends no header.
    hsts_max_age: int = 180 * 24 * 3600

    @property
    def tls(self) -> bool:
        """Whether the server speaks TLS itself (then the session cookie is Secure)."""
        return self.certfile is not None

    def security_headers(self) -> list[tuple[str, str]]:
        """Header fields for every response: HSTS under TLS only (RFC 6797 §7.2: a host
        must not send it over plain HTTP, where an attacker could forge or strip it)."""
        if not self.tls or self.hsts_max_age <= 0:
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
    parser.add_argument("--port", type=int, default=_env_int(env, "FASTIM_PORT", defaults.port),
                        help="port to listen on, 0 for any free port "
                             "(FASTIM_PORT, default %(default)s)")
    parser.add_argument("--db", default=env.get("FASTIM_DB", ""),
                        help="database URL, e.g. mysql://root:@127.0.0.1:3306/fastim "
                             "(FASTIM_DB, default: SQLite file in the data dir)")
    parser.add_argument("--redis", default=env.get("FASTIM_REDIS", ""),
                        help="Redis URL for the message bus, e.g. redis://127.0.0.1:6379/0 "
                             "(FASTIM_REDIS, default: in-process)")
    parser.add_argument("--role", choices=ROLES, default=env.get("FASTIM_ROLE", defaults.role),
                        help="what this node serves: api (REST and pages), chat (/chat), "
                             "or all (FASTIM_ROLE, default %(default)s; api and chat "
                             "need --redis)")
    parser.add_argument("--node-ttl", type=float,
                        default=_env_float(env, "FASTIM_NODE_TTL", defaults.node_ttl),
                        help="seconds after a node's last heartbeat that its users stop "
                             "being online (FASTIM_NODE_TTL, default %(default)s)")
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
                        help="an Origin besides the server's own that may open /chat; "
                             "repeatable (FASTIM_ALLOWED_ORIGINS, comma-separated)")
    parser.add_argument("--certfile", type=Path, default=_env_path(env, "FASTIM_CERTFILE"),
                        help="PEM certificate (chain) to serve HTTPS and wss:// "
                             "(FASTIM_CERTFILE, default: plain HTTP)")
    parser.add_argument("--keyfile", type=Path, default=_env_path(env, "FASTIM_KEYFILE"),
                        help="PEM private key of --certfile, if not in the same file "
                             "(FASTIM_KEYFILE)")
    hub = defaults.hub
    parser.add_argument("--chat-rate", type=float,
                        default=float(env.get("FASTIM_CHAT_RATE", hub.rate)),
                        help="chat messages a second one connection may send "
                             "(FASTIM_CHAT_RATE, default %(default)s; bursts of twice that)")
    parser.add_argument("--chat-max-text", type=int,
                        default=_env_int(env, "FASTIM_CHAT_MAX_TEXT", hub.limits.max_text),
                        help="longest text message in characters "
                             "(FASTIM_CHAT_MAX_TEXT, default %(default)s)")


def config_from_args(args: argparse.Namespace) -> Config:
    """A Config from parsed `serve` arguments."""
    if args.role not in ROLES:  # argparse checks the flag's choices, not the env default
        raise SystemExit(f"--role must be one of {', '.join(ROLES)}, not {args.role!r}")
    if args.role != "all" and not args.redis:
        # An api node tells chat nodes of contact changes over Redis; without it their
        # friend and member caches would go stale.
        raise SystemExit(f"--role {args.role} needs --redis (nodes share it)")
    if args.node_ttl <= 0:
        raise SystemExit("--node-ttl must be positive")
    return Config(
        host=args.host,
        port=args.port,
        db=args.db,
        redis=args.redis,
        role=args.role,
        node_ttl=args.node_ttl,
        data_dir=args.data_dir,
        resource_dir=args.resource_dir,
        allowed_origins=tuple(args.allowed_origins),
        certfile=args.certfile,
        keyfile=args.keyfile,
        hub=HubOptions(rate=args.chat_rate, burst=2 * args.chat_rate,
                       limits=ChatLimits(max_text=args.chat_max_text)),
    )


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise SystemExit(f"{name} must be an integer, not {value!r}") from None


def _env_path(env: Mapping[str, str], name: str) -> Path | None:
    value = env.get(name)
    return Path(value) if value else None


def _env_float(env: Mapping[str, str], name: str, default: float) -> float:
    value = env.get(name)
    if value is None or value == "":
        return default
    try:
        return float(value)
    except ValueError:
        raise SystemExit(f"{name} must be a number, not {value!r}") from None
