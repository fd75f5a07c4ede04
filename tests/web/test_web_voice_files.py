"""Voice messages and files in a real browser: Chromium's fake microphone records two
seconds, the other user plays them; a file is attached, shown as a card, and downloaded
by the other side (and only there)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

pytest.register_assert_rewrite("tests.web_support", "tests.axe_support")
from tests.axe_support import assert_accessible  # noqa: E402
from tests.store_fixtures import SAFETY_TIMEOUT  # noqa: E402
from tests.web_support import (  # noqa: E402
    CHROMIUM,
    LAUNCH_ARGS,
    WAIT_MS,
    Person,
    WebServer,
    befriend,
    conversation_link,
    make_person,
    open_chat,
    open_conversation,
    require_chromium,
    screenshot,
)

# The server, people and shots fixtures; `browser` is this module's own (a fake microphone).
# axe runs on the parts these tests add (the composer, the messages): the rest of the page
# is tests/web/test_web_a11y.py's.
pytest_plugins = ["tests.web_support"]
pytestmark = pytest.mark.browser
expect.set_options(timeout=WAIT_MS)

#: Chromium's fake capture device (a beeping tone) without the permission prompt; and
#: playback without a user gesture for the page's own <audio> elements.
FAKE_AUDIO = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
              "--autoplay-policy=no-user-gesture-required"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    require_chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True,
                                              args=[*LAUNCH_ARGS, *FAKE_AUDIO],
                                              timeout=SAFETY_TIMEOUT * 3000)
        try:
            yield chromium
        finally:
            chromium.close()


def test_a_voice_message_is_recorded_sent_and_played(
        browser: Any, server: WebServer, people: list[Person], shots: Path) -> None:
    alice, bob = make_person(server, "Alice"), make_person(server, "Bob")
    people += [alice, bob]
    befriend(server, alice, bob)
    pa, pb = open_chat(browser, server, alice), open_chat(browser, server, bob)
    pa.context.grant_permissions(["microphone"])
    open_conversation(pa, "u", bob.id)
    open_conversation(pb, "u", alice.id)

    # A cancelled recording sends nothing.
    pa.click("#record")
    expect(pa.locator("#recorder")).to_be_visible()
    expect(pa.locator("#message")).to_be_hidden()
    pa.click("#rec-cancel")
    expect(pa.locator("#recorder")).to_be_hidden()
    expect(pa.locator("#message")).to_be_visible()

    # Two seconds from the fake microphone, with the timer running, then sent.
    pa.click("#record")
    expect(pa.locator("#recorder")).to_be_visible()
    expect(pa.locator("#rec-time")).to_have_text("0:02", timeout=WAIT_MS)
    screenshot(pa, shots, "voice-recording")
    assert_accessible(pa, "recording a voice message", "#composer")
    pa.click("#record")  # stop and send
    expect(pa.locator("#recorder")).to_be_hidden()
    mine = pa.locator('#messages li.msg[data-media="3"]').last
    expect(mine).to_have_attribute("data-status", re.compile("^(sent|read)$"))
    assert pa.locator('#messages li.msg[data-media="3"]').count() == 1

    # Bob sees it with the server's length, and plays it: pause, progress, the end.
    voice = pb.locator('#messages li.msg[data-media="3"]').last
    expect(voice.locator(".voice-time")).to_have_text(re.compile(r"^0:0[23]$"))
    expect(conversation_link(pb, "u", alice.id).locator(".conv-preview")).to_have_text(
        re.compile(r"^Voice message 0:0[23]$"))
    voice.locator(".voice-play").click()
    expect(voice.locator(".voice")).to_have_attribute("data-state", "playing")
    pb.wait_for_function("""() => {
        const bars = document.querySelectorAll('#messages li.msg[data-media="3"] .voice-progress');
        const bar = bars[bars.length - 1];
        return bar && bar.value > 0;
    }""")
    expect(voice.locator(".voice-time")).to_have_text(re.compile(r"^0:0\d / 0:0[23]$"))
    screenshot(pb, shots, "voice-playing")
    assert_accessible(pb, "a voice message playing", "#messages")
    voice.locator(".voice-play").click()  # pause
    expect(voice.locator(".voice")).to_have_attribute("data-state", "paused")
    voice.locator(".voice-play").click()  # and on to the end
    expect(voice.locator(".voice")).to_have_attribute("data-state", "ended", timeout=WAIT_MS)

    # The sender can listen to it too.
    mine.locator(".voice-play").click()
    expect(mine.locator(".voice")).to_have_attribute("data-state", re.compile("^(playing|ended)$"))
    for person in (alice, bob):
        assert person.errors == [] and person.dialogs == [], (person.nickname, person.errors)


def test_only_one_voice_message_plays_at_a_time(
        browser: Any, server: WebServer, people: list[Person]) -> None:
    alice, bob = make_person(server, "Alice"), make_person(server, "Bob")
    people += [alice, bob]
    befriend(server, alice, bob)
    pa = open_chat(browser, server, alice, scheme="dark")
    pa.context.grant_permissions(["microphone"])
    open_conversation(pa, "u", bob.id)
    for expected in (1, 2):
        pa.click("#record")
        expect(pa.locator("#recorder")).to_be_visible()
        expect(pa.locator("#rec-time")).to_have_text("0:02", timeout=WAIT_MS)
        pa.click("#record")
        sent = pa.locator('#messages li.msg[data-media="3"][data-status="sent"]')
        expect(sent).to_have_count(expected)
    first, second = (pa.locator('#messages li.msg[data-media="3"] .voice').nth(i) for i in (0, 1))
    first.locator(".voice-play").click()
    expect(first).to_have_attribute("data-state", "playing")
    second.locator(".voice-play").click()
    expect(second).to_have_attribute("data-state", "playing")
    expect(first).to_have_attribute("data-state", "paused")
    assert_accessible(pa, "voice messages sent (dark)", "#messages")
    assert alice.errors == [], alice.errors


def test_a_file_is_attached_sent_and_downloaded(
        browser: Any, server: WebServer, people: list[Person], shots: Path,
        tmp_path: Path) -> None:
    alice, bob, carol = (make_person(server, name) for name in ("Alice", "Bob", "Carol"))
    people += [alice, bob, carol]
    befriend(server, alice, bob)
    pa, pb = open_chat(browser, server, alice), open_chat(browser, server, bob)
    open_conversation(pa, "u", bob.id)
    open_conversation(pb, "u", alice.id)

    document = tmp_path / "季度报告 Q3.pdf"
    content = b"%PDF-1.4\n" + b"fastim browser test\n" * 2000 + b"%%EOF\n"
    document.write_bytes(content)
    pa.set_input_files("#attach-doc-file", str(document))
    mine = pa.locator('#messages li.msg[data-media="5"]').last
    expect(mine).to_have_attribute("data-status", re.compile("^(sent|read)$"))
    card = pb.locator('#messages li.msg[data-media="5"] a.file-card').last
    expect(card.locator(".file-name")).to_have_text("季度报告 Q3.pdf")
    expect(card.locator(".file-size")).to_have_text("40.0 KB")
    expect(card.locator(".file-ext")).to_have_text("PDF")
    expect(conversation_link(pb, "u", alice.id).locator(".conv-preview")).to_have_text(
        "File: 季度报告 Q3.pdf")
    screenshot(pb, shots, "file-card")
    assert_accessible(pb, "a file received", "#messages")
    assert_accessible(pa, "a file sent", "#messages")

    with pb.expect_download() as info:
        card.click()
    download = info.value
    assert download.suggested_filename == "季度报告 Q3.pdf"
    saved = tmp_path / "downloaded.pdf"
    download.save_as(saved)
    assert saved.read_bytes() == content

    # The same link is refused to someone who was not in the conversation.
    href = card.get_attribute("href")
    assert href is not None and re.fullmatch(r"/attach/file/[0-9a-f]{64}", href)
    refused = server.running.get(href, token=carol.token)
    assert refused.status == 403
    for person in (alice, bob):
        assert person.errors == [] and person.dialogs == [], (person.nickname, person.errors)


def test_a_file_upload_shows_progress_can_be_cancelled_and_files_can_be_dropped(
        browser: Any, server: WebServer, people: list[Person], tmp_path: Path) -> None:
    from tests.web.test_web_media import throttle_uploads

    alice, bob = make_person(server, "Alice"), make_person(server, "Bob")
    people += [alice, bob]
    befriend(server, alice, bob)
    pa = open_chat(browser, server, alice, scheme="dark")
    pb = open_chat(browser, server, bob, scheme="dark")
    open_conversation(pa, "u", bob.id)
    open_conversation(pb, "u", alice.id)

    # A slow upload: its card shows a progress bar and a Cancel; cancelled, it is gone.
    big = tmp_path / "big.zip"
    big.write_bytes(bytes(range(256)) * 2000)
    throttle_uploads(pa, 50_000)
    pa.set_input_files("#attach-doc-file", str(big))
    uploading = pa.locator('#messages li.msg[data-media="5"][data-status="uploading"]')
    expect(uploading.locator(".file-name")).to_have_text("big.zip")
    expect(uploading.locator("progress")).to_be_visible()
    pa.wait_for_function("""() => {
        const bar = document.querySelector('#messages li.msg[data-status="uploading"] progress');
        return bar && bar.value > 0 && bar.value < 100;
    }""")
    assert_accessible(pa, "a file uploading", "#messages")
    uploading.get_by_role("button", name="Cancel").click()
    expect(pa.locator('#messages li.msg[data-media="5"]')).to_have_count(0)

    # Dropped on the conversation: a text file goes as a file, not as a photo.
    pa.evaluate("""() => {
        const data = new DataTransfer();
        data.items.add(new File(['hello from a drop\\n'], 'notes.txt', { type: 'text/plain' }));
        const target = document.getElementById('conversation');
        target.dispatchEvent(new DragEvent('dragover', { dataTransfer: data, bubbles: true, cancelable: true }));
        target.dispatchEvent(new DragEvent('drop', { dataTransfer: data, bubbles: true, cancelable: true }));
    }""")
    card = pb.locator('#messages li.msg[data-media="5"] a.file-card').last
    expect(card.locator(".file-name")).to_have_text("notes.txt")
    expect(card.locator(".file-size")).to_have_text("18 B")
    assert_accessible(pb, "a file received (dark)", "#messages")
    assert_accessible(pa, "a file sent (dark)", "#messages")
    for person in (alice, bob):
        assert person.errors == [] and person.dialogs == [], (person.nickname, person.errors)
