"""Connection trouble in a real browser: the server restarted mid-conversation, and a
message typed while there was no connection, sent exactly once when it is back."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

# web_support is also this module's plugin (its fixtures): let pytest rewrite its asserts.
pytest.register_assert_rewrite("tests.web_support")
from tests.web_support import (  # noqa: E402
    WAIT_MS,
    Person,
    WebServer,
    befriend,
    bubbles,
    conversation_link,
    make_person,
    open_chat,
    open_conversation,
    screenshot,
    send_text,
    two_friends_chatting,
    wait_online,
)

# The browser, server, people and shots fixtures.
pytest_plugins = ["tests.web_support"]
pytestmark = pytest.mark.browser
expect.set_options(timeout=WAIT_MS)

NOT_ONLINE = re.compile("^(offline|connecting|waiting-network)$")


def once(page: Any, text: str) -> Any:
    found = bubbles(page, text)
    expect(found).to_have_count(1)
    return found


def test_server_restart_mid_conversation(browser: Any, server: WebServer,
                                         people: list[Person], shots: Path) -> None:
    alice, bob, pa, pb = two_friends_chatting(browser, server, people)
    send_text(pa, "Are you there?")
    once(pb, "Are you there?")
    send_text(pb, "Yes!")
    once(pa, "Yes!")

    # Alice's network goes (her page lets its socket go and waits for the network);
    # then the server stops: both pages say so.
    alice.context.set_offline(True)
    server.stop()
    for page in (pa, pb):
        expect(page.locator("#conn")).to_have_attribute("data-state", NOT_ONLINE)
        expect(page.locator("#conv-conn")).to_be_visible()
    expect(pa.locator("#conn")).to_have_attribute("data-state", "waiting-network")

    # Alice writes anyway: the message waits, marked as such, counted in the banner.
    send_text(pa, "Typed while offline")
    queued = once(pa, "Typed while offline")
    expect(queued).to_have_attribute("data-status", "pending")
    expect(pa.locator("#conn-text")).to_contain_text("1 to send")
    screenshot(pa, shots, "offline")
    pa.evaluate("() => { location.hash = ''; }")  # back to the list
    expect(pa.locator("#app")).to_have_attribute("data-view", "list")

    # The server comes back on the same port and data. Bob's page reconnects by itself
    # (backoff) and he writes while Alice is still cut off.
    server.start()
    wait_online(pb)
    expect(pb.locator("#conn")).to_have_attribute("data-state", "online")
    send_text(pb, "Sent while you were away")
    send_text(pb, "And another")
    expect(once(pb, "And another")).to_have_attribute("data-status", "sent")
    expect(pa.locator("#conn")).to_have_attribute("data-state", "waiting-network")

    # Alice's network returns: she reconnects, syncs Bob's messages (counted once in her
    # badge), and her queued one goes out — once.
    alice.context.set_offline(False)
    expect(pa.locator("#conn")).to_have_attribute("data-state", "online")
    link = conversation_link(pa, "u", bob.id)
    # Her own message was stored last, after Bob's two.
    expect(link.locator(".conv-preview")).to_have_text("You: Typed while offline")
    expect(link.locator(".badge")).to_have_text("2")
    link.click()
    once(pa, "Sent while you were away")
    expect(link).to_have_attribute("data-unread", "0")
    expect(once(pa, "Typed while offline")).to_have_attribute("data-status", re.compile("^(sent|read)$"))
    once(pb, "Typed while offline")
    expect(pa.locator("#conn-text")).to_have_text("Online")
    # Bob had the conversation open: Alice's message shows as read.
    expect(once(pa, "Typed while offline")).to_have_attribute("data-status", "read")

    # Stored once: a reload on both sides shows each message once, in the server's
    # order (Bob's was stored first: Alice's waited for her network).
    for page in (pa, pb):
        page.reload()
        wait_online(page)
        once(page, "Typed while offline")
        once(page, "Sent while you were away")
        texts = page.locator("#messages p.text").all_text_contents()
        assert texts == ["Are you there?", "Yes!", "Sent while you were away", "And another",
                         "Typed while offline"]
    history = server.running.get(f"/chat/history?cmd=10&dstid={bob.id}", token=alice.token).list
    assert [m["content"] for m in history["rows"]].count("Typed while offline") == 1
    for person in (alice, bob):
        assert person.errors == [] and person.dialogs == [], (person.nickname, person.errors)


def test_messages_in_flight_when_the_server_restarts_arrive_once(
        browser: Any, server: WebServer, people: list[Person]) -> None:
    """A burst larger than the client sends at once (it paces itself under the server's
    rate limit), and the server restarts in the middle of it: whatever had no ack is sent
    again with its cid after the restart, and the server keeps one copy of each."""
    alice, bob = make_person(server, "Alice"), make_person(server, "Bob")
    people += [alice, bob]
    befriend(server, alice, bob)
    pa = open_chat(browser, server, alice)
    open_conversation(pa, "u", bob.id)
    texts = [f"burst {n}" for n in range(1, 41)]
    pa.evaluate("""texts => {
        const app = window.fastim;
        for (const text of texts) app.sendText(app.current, text);
    }""", texts)
    server.restart()
    wait_online(pa)
    for text in texts:
        expect(once(pa, text)).to_have_attribute("data-status", "sent")
    expect(pa.locator("#conn-text")).to_have_text("Online")
    rows = server.running.get(f"/chat/history?cmd=10&dstid={bob.id}&pagesize=100",
                              token=alice.token).list["rows"]
    assert sorted(m["content"] for m in rows) == sorted(texts)
    assert alice.errors == [], alice.errors


def test_a_lost_ack_means_a_resend_with_the_same_cid_and_one_message(
        browser: Any, server: WebServer, people: list[Person]) -> None:
    alice, bob, pa, pb = two_friends_chatting(browser, server, people)
    # The ack of the next message is lost (as if the connection died just before it).
    pa.evaluate("""() => {
        const conn = window.fastim.conn;
        const receive = conn.receive.bind(conn);
        window.acks = [];
        conn.addEventListener('ack', (e) => window.acks.push(e.detail));
        conn.receive = (frame) => {
            if (frame.cmd === 1 && !window.lostAck) { window.lostAck = frame; return; }
            receive(frame);
        };
    }""")
    send_text(pa, "Did you get this?")
    pa.wait_for_function("() => window.lostAck !== undefined")
    expect(once(pa, "Did you get this?")).to_have_attribute("data-status", "pending")
    once(pb, "Did you get this?")
    # A new connection: the outbox sends it again with the same cid; the server answers
    # with the first message's id and dup, and stores nothing new.
    pa.evaluate("() => window.fastim.conn.open()")
    expect(once(pa, "Did you get this?")).to_have_attribute("data-status", re.compile("^(sent|read)$"))
    pa.wait_for_function("() => window.acks.length > 0")  # the sync may have come first
    ack = pa.evaluate("() => window.acks[0]")
    lost = pa.evaluate("() => window.lostAck")
    assert (ack["cid"], ack["id"], ack["dup"]) == (lost["cid"], lost["id"], True)
    once(pb, "Did you get this?")
    rows = server.running.get(f"/chat/history?cmd=10&dstid={bob.id}", token=alice.token).list["rows"]
    assert [m["content"] for m in rows] == ["Did you get this?"]
    assert alice.errors == [] and bob.errors == []


def test_a_message_that_never_came_live_arrives_at_the_next_connection(
        browser: Any, server: WebServer, people: list[Person]) -> None:
    """The client's sync cursor moves only with sync pages (docs/chat-protocol.md "The
    sync cursor"). A message that never reached the page live, followed by one that did
    (across nodes a live id can overtake a lower one still committing, and the node may
    go before it sends the lower one), comes with the next connection's sync. A cursor
    moved to the newest live id had skipped it for good."""
    alice, bob, pa, pb = two_friends_chatting(browser, server, people)
    send_text(pa, "Hello")
    once(pb, "Hello")
    # Bob's page never sees the next message arrive (lost with the node that held it).
    pb.evaluate("""() => {
        const conn = window.fastim.conn;
        const receive = conn.receive.bind(conn);
        conn.receive = (frame) => {
            if (frame.content === 'Lost on the way' && !window.dropped) {
                window.dropped = frame.id;
                return;
            }
            receive(frame);
        };
    }""")
    send_text(pa, "Lost on the way")
    pb.wait_for_function("() => window.dropped !== undefined")
    send_text(pa, "And after it")
    once(pb, "And after it")
    expect(bubbles(pb, "Lost on the way")).to_have_count(0)
    # A new connection (as after the node went): its sync brings the lost one, once,
    # and only it: the page names the messages it holds above its cursor.
    pages: list[dict[str, Any]] = []
    pb.on("websocket", lambda ws: ws.on("framereceived", lambda payload: pages.append(
        json.loads(payload)) if '"cmd":21' in payload else None))
    pb.evaluate("() => window.fastim.conn.open()")
    once(pb, "Lost on the way")
    assert [[row["content"] for row in p["rows"]] for p in pages] == [["Lost on the way"]]
    texts = pb.locator("#messages p.text").all_text_contents()
    assert texts == ["Hello", "Lost on the way", "And after it"]
    once(pb, "And after it")
    # Every 200 messages that came live (32 here, to keep the burst short), the page
    # asks again from its cursor (a checkpoint): the server sends none of them twice,
    # and the cursor moves past them.
    syncs: list[dict[str, Any]] = []
    pb.on("websocket", lambda ws: ws.on("framesent", lambda payload: syncs.append(
        json.loads(payload)) if '"cmd":20' in payload else None))
    pb.evaluate("() => window.fastim.conn.open()")
    wait_online(pb)
    pb.wait_for_function("() => window.fastim.syncing === null")
    pb.evaluate("() => { window.fastim.checkpointEvery = 32; }")
    burst = [f"burst {n}" for n in range(32)]
    pa.evaluate("""texts => {
        const app = window.fastim;
        for (const text of texts) app.sendText(app.current, text);
    }""", burst)
    once(pb, burst[-1])
    pb.wait_for_function("() => window.fastim.syncing === null && window.fastim.state.syncCursor"
                         " >= Math.max(...window.fastim.current.messages.map(m => m.id))")
    assert [s["since"] > 0 for s in syncs] == [True, True], syncs  # reconnect, checkpoint
    assert pb.locator("#messages p.text").all_text_contents() == texts + burst
    assert alice.errors == [] and bob.errors == []
