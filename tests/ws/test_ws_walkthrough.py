"""docs/protocol.md and its Chinese version docs/zh/protocol.md cannot drift from fastim.ws:
every example in them is run here, the same way for both.

The document's conventions, which these tests rely on:

- ```console blocks hold commands (`$ python -m fastim.ws ...`) each followed by its
  output. `decode` and `accept-key` are run and their output compared line for line.
  The one `echo --trace` and the one `walkthrough` command are the capture: the test
  starts the real echo server, replays the walkthrough against it, and compares both
  outputs (ports, which change from run to run, are normalised).
- ```pycon blocks are Python sessions, run in order as one doctest.
- The table after `<!-- rules table ... -->` lists invalid frames; each row is decoded and
  its RFC section and close code compared.
- Names written `fastim.ws.x.y` (or `x.y` for a module of fastim.ws) must exist.
"""

from __future__ import annotations

import doctest
import importlib
import io
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest

from fastim.ws.__main__ import main
from fastim.ws.deflate import PerMessageDeflate
from fastim.ws.exceptions import InvalidURI
from fastim.ws.explain import explain_frame, parse_hex
from fastim.ws.frames import Frame, FrameDecoder, Opcode, encode_frame
from fastim.ws.handshake import accept_key
from fastim.ws.protocol import Role
from fastim.ws.walkthrough import CHAT_MESSAGE, MASKING_KEYS, replay

ROOT = Path(__file__).resolve().parents[2]
DOC_PORT = 9001


@dataclass
class Command:
    line: int  # line of the `$` in docs/protocol.md
    argv: list[str]  # after `python -m fastim.ws`
    output: list[str]


def fenced_blocks(text: str, kind: str) -> list[tuple[int, str]]:
    """(line number of the block's first line, body) of every ```kind block."""
    blocks = []
    for match in re.finditer(rf"^```{kind}\n(.*?)^```$", text, re.M | re.S):
        blocks.append((text.count("\n", 0, match.start(1)) + 1, match.group(1)))
    return blocks


def console_commands(text: str) -> list[Command]:
    commands: list[Command] = []
    for first_line, body in fenced_blocks(text, "console"):
        for offset, line in enumerate(body.splitlines()):
            if line.startswith("$ "):
                words = shlex.split(line[2:])
                assert words[:3] == ["python", "-m", "fastim.ws"], line
                commands.append(Command(first_line + offset, words[3:], []))
            else:
                assert commands, f"output before any command in the block at line {first_line}"
                commands[-1].output.append(line)
    return commands


class Doc:
    """One version of the walkthrough page and what the tests need of it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.name = str(path.relative_to(ROOT))
        self.text = path.read_text(encoding="utf-8")
        self.commands = console_commands(self.text)
        self.capture = {c.argv[0]: c for c in self.commands if c.argv[0] in ("echo", "walkthrough")}
        self.examples = [c for c in self.commands if c.argv[0] in ("decode", "accept-key")]

    def __repr__(self) -> str:
        return self.name


DOCS = [Doc(ROOT / "docs" / "protocol.md"), Doc(ROOT / "docs" / "zh" / "protocol.md")]
ENGLISH = DOCS[0]
each_doc = pytest.mark.parametrize("doc", DOCS, ids=repr)


@each_doc
def test_the_document_is_found_and_has_examples(doc: Doc) -> None:
    commands = doc.commands
    assert [c.argv[0] for c in commands].count("echo") == 1
    assert [c.argv[0] for c in commands].count("walkthrough") == 1
    assert len(doc.examples) >= 8
    assert len(fenced_blocks(doc.text, "pycon")) >= 8
    # Every command is one the tests run: nothing in the document goes unchecked.
    assert {c.argv[0] for c in commands} == {"echo", "walkthrough", "decode", "accept-key"}


def test_the_translations_show_the_same_bytes() -> None:
    # The same commands with the same output, and the same Python sessions, in the same
    # order: the words around them are the translation's own.
    for doc in DOCS[1:]:
        assert [(c.argv, c.output) for c in doc.commands] == [
            (c.argv, c.output) for c in ENGLISH.commands
        ], doc
        assert [body for _, body in fenced_blocks(doc.text, "pycon")] == [
            body for _, body in fenced_blocks(ENGLISH.text, "pycon")
        ], doc
        assert rule_rows(doc) == rule_rows(ENGLISH), doc


@pytest.mark.parametrize(
    "command",
    [c for doc in DOCS for c in doc.examples],
    ids=[f"{doc!r}:{c.line}" for doc in DOCS for c in doc.examples],
)
def test_decode_and_accept_key_examples(
    command: Command, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(command.argv)
    assert capsys.readouterr().out.splitlines() == command.output
    valid = command.argv[0] == "accept-key" or command.output[-1].startswith("VALID")
    assert status == (0 if valid else 1)


@each_doc
def test_python_sessions_run_as_doctests(doc: Doc) -> None:
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.DONT_ACCEPT_TRUE_FOR_1)
    report: list[str] = []
    globs: dict[str, object] = {}
    for line, body in fenced_blocks(doc.text, "pycon"):
        test = parser.get_doctest(body, globs, f"{doc.name}:{line}", str(doc.path), line - 1)
        runner.run(test, out=report.append, clear_globs=False)
        globs = test.globs  # DocTest copies its globals: carry them to the next session
    assert runner.failures == 0, "".join(report)
    assert runner.tries >= 40


# -- the capture --------------------------------------------------------------------------


def normalise_peer(lines: list[str]) -> list[str]:
    # The client's port changes from run to run: "127.0.0.1:51910 recv ..."
    return [re.sub(r"^127\.0\.0\.1:\d+ ", "127.0.0.1:PEER ", line) for line in lines]


@each_doc
def test_the_capture_is_what_fastim_does(doc: Doc, capsys: pytest.CaptureFixture[str]) -> None:
    echo, walk = doc.capture["echo"], doc.capture["walkthrough"]
    assert walk.argv == ["walkthrough", f"ws://127.0.0.1:{DOC_PORT}/"]
    argv = ["0" if arg == str(DOC_PORT) else arg for arg in echo.argv]
    assert argv != echo.argv  # the document's port was there, and is replaced
    server = subprocess.Popen(
        [sys.executable, "-m", "fastim.ws", *argv],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert server.stderr is not None
        listening = server.stderr.readline().rstrip("\n")
        port = int(listening.rsplit(":", 1)[1])
        # The client runs in this process, through the CLI, as the document shows it.
        assert main(["walkthrough", f"ws://127.0.0.1:{port}/"]) == 0
    finally:
        server.terminate()
        trace, _ = server.communicate(timeout=10)
    client_lines = capsys.readouterr().out.replace(f"127.0.0.1:{port}", f"127.0.0.1:{DOC_PORT}")
    assert client_lines.splitlines() == walk.output
    # The port is in the listening line and in the request's Host field.
    trace = trace.replace(f"127.0.0.1:{port}", f"127.0.0.1:{DOC_PORT}")
    live = [listening.replace(f":{port}", f":{DOC_PORT}"), *trace.splitlines()]
    assert normalise_peer(live) == normalise_peer(echo.output)


def capture_frames(who: str, doc: Doc = ENGLISH) -> list[bytes]:
    """The frames the capture shows `who` ("client" or "server") sending, as bytes."""
    frames: list[str] = []
    current = None
    for line in doc.capture["walkthrough"].output:
        if re.match(r"(client|server): [0-9a-f]{2}( [0-9a-f]{2})*$", line):
            current = line.split(": ", 1)
            frames.append(current[0] + " " + current[1])
        elif current is not None and re.match(r" {8}[0-9a-f]{2}( [0-9a-f]{2})*$", line):
            frames[-1] += " " + line.strip()
        else:
            current = None
    return [parse_hex(f.split(" ", 1)[1]) for f in frames if f.startswith(who)]


def test_capture_handshake_against_accept_key() -> None:
    lines = ENGLISH.capture["walkthrough"].output
    key = next(line.split(": ")[2] for line in lines if "Sec-WebSocket-Key:" in line)
    accept = next(line.split(": ")[2] for line in lines if "Sec-WebSocket-Accept:" in line)
    assert accept_key(key) == accept == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_capture_frames_against_encode_and_decode() -> None:
    sent, received = capture_frames("client"), capture_frames("server")
    assert len(sent) == len(MASKING_KEYS) == 6 and len(received) == 5
    for raw, key in zip(sent, MASKING_KEYS, strict=True):
        decoder = FrameDecoder(expect_masked=True)
        decoder.feed(raw)
        frame = decoder.next_frame()
        assert frame is not None and decoder.buffered == 0
        header_size = len(raw) - len(frame.payload)
        assert raw[header_size - 4 : header_size] == key
        assert encode_frame(frame, key) == raw
    for raw in received:
        decoder = FrameDecoder(expect_masked=False)
        decoder.feed(raw)
        frame = decoder.next_frame()
        assert frame is not None and decoder.buffered == 0
        assert encode_frame(frame) == raw


def test_capture_compressed_message_against_deflate() -> None:
    compressed = PerMessageDeflate(local_max_window_bits=12).compress(CHAT_MESSAGE.encode())
    client = next(f for f in capture_frames("client") if f[0] & 0x40)
    server = next(f for f in capture_frames("server") if f[0] & 0x40)
    explained = explain_frame(client, receiver=Role.SERVER, deflate=True)
    assert explained.payload == compressed
    assert explained.message == CHAT_MESSAGE
    # The server compressed its echo with the same settings: the same bytes, unmasked.
    assert server == encode_frame(Frame(Opcode.TEXT, compressed, rsv1=True))


def test_decoded_frames_are_frames_of_the_capture() -> None:
    # A frame the document dissects as valid, saying who received it, is one of the capture.
    for command in ENGLISH.examples:
        if command.argv[0] != "decode" or not command.output[-1].startswith("VALID"):
            continue
        hex_args = [a for a in command.argv[1:] if not a.startswith("--")]
        frame = parse_hex(" ".join(hex_args))
        if "--server" in command.argv:
            assert frame in capture_frames("client"), command.line
        else:
            assert "--client" in command.argv, command.line
            assert frame in capture_frames("server"), command.line


# -- the table of broken rules ------------------------------------------------------------


# The "received by" column, in each language.
RECEIVERS = {"server": Role.SERVER, "client": Role.CLIENT, "either": None,
             "服务器": Role.SERVER, "客户端": Role.CLIENT, "任一方": None}


def rule_rows(doc: Doc) -> list[tuple[str, bool, Role | None, str, int]]:
    table = doc.text.split("<!-- rules table", 1)[1].split("\n\n", 1)[0]
    rows = []
    for line in table.splitlines()[3:]:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        frame = re.search(r"`([0-9a-f ]+)`", cells[0])
        assert frame is not None, line
        receiver = RECEIVERS[cells[1]]
        rows.append((frame.group(1), "--deflate" in cells[0], receiver, cells[3], int(cells[4])))
    return rows


RULES = rule_rows(ENGLISH)


def test_rules_table_has_every_kind_of_rule() -> None:
    assert len(RULES) >= 12
    assert {code for *_, code in RULES} == {1002, 1007}


@pytest.mark.parametrize(("frame", "deflate", "receiver", "section", "code"), RULES)
def test_rules_table_rows(
    frame: str, deflate: bool, receiver: Role | None, section: str, code: int
) -> None:
    explained = explain_frame(parse_hex(frame), receiver=receiver, deflate=deflate)
    assert explained.close_code == code
    assert explained.violations[0].section == section


# -- names --------------------------------------------------------------------------------


MODULES = "handshake|frames|protocol|deflate|connection|server|client|explain|walkthrough|trace|console"


def resolve(name: str) -> object:
    """The object a dotted name such as `fastim.ws.frames.FrameDecoder.feed` refers to."""
    parts = name.split(".")
    for split in range(len(parts), 0, -1):  # the longest prefix that is a module
        try:
            target: object = importlib.import_module(".".join(parts[:split]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[split:]:
            target = getattr(target, attribute)
        return target
    raise ModuleNotFoundError(name)


@each_doc
def test_every_function_named_exists(doc: Doc) -> None:
    names = set(re.findall(r"`(fastim\.ws\.[\w.]+)`", doc.text))
    names |= {
        f"fastim.ws.{name}" for name in re.findall(rf"`((?:{MODULES})\.[\w.]+)`", doc.text)
    }
    assert len(names) >= 30
    for name in sorted(names):
        try:
            resolve(name)
        except (AttributeError, ModuleNotFoundError):
            pytest.fail(f"{doc.name} names {name}, which does not exist")


def test_resolve_finds_what_exists_only() -> None:
    assert resolve("fastim.ws.frames.FrameDecoder.feed") is FrameDecoder.feed
    assert resolve("fastim.ws.connect") is resolve("fastim.ws.client.connect")
    with pytest.raises(AttributeError):
        resolve("fastim.ws.frames.no_such_function")
    with pytest.raises(ModuleNotFoundError):
        resolve("no_such_package.x")


# -- the walkthrough client on its own ------------------------------------------------------


def test_walkthrough_refuses_wss() -> None:
    with pytest.raises(InvalidURI, match="ws://"):
        replay("wss://127.0.0.1:9/", io.StringIO())


def test_walkthrough_reports_a_server_that_hangs_up() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()

        def hang_up() -> None:
            connection, _ = listener.accept()
            with connection:
                connection.recv(65536)  # read the request, so the close is a FIN not a RST

        thread = threading.Thread(target=hang_up)
        thread.start()
        out = io.StringIO()
        try:
            with pytest.raises(ConnectionError, match="closed the connection"):
                replay(f"ws://127.0.0.1:{listener.getsockname()[1]}/", out)
        finally:
            thread.join(10)
    assert out.getvalue().startswith("# the opening handshake")


# -- the Chinese guide ----------------------------------------------------------------------


def test_the_chinese_guide_is_linked_at_the_top_and_its_links_resolve() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "](docs/zh/README.md)" in "\n".join(readme.splitlines()[:5])
    guide_path = ROOT / "docs" / "zh" / "README.md"
    guide = guide_path.read_text(encoding="utf-8")
    for target in re.findall(r"\]\(([^)#]+)\)", guide):
        if not target.startswith("http"):
            assert (guide_path.parent / target).exists(), target
    # Its one worked example is the tutorial's key.
    line = next(line for line in guide.splitlines() if "accept-key" in line)
    key, accept = re.search(r"accept-key (\S+) +# (\S+)", line).groups()  # type: ignore[union-attr]
    assert accept_key(key) == accept
