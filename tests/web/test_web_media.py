"""Stickers, photos and profile pictures in a real browser: picked, uploaded with a
progress bar, and shown on the other side (thumbnail, then full size)."""

from __future__ import annotations

import io
import random
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image, ImageDraw
from playwright.sync_api import expect

# web_support is also this module's plugin (its fixtures): let pytest rewrite its asserts.
pytest.register_assert_rewrite("tests.web_support")
from tests.web_support import (  # noqa: E402
    WAIT_MS,
    Person,
    WebServer,
    befriend,
    conversation_link,
    make_person,
    open_chat,
    open_conversation,
    screenshot,
    two_friends_chatting,
)

# The browser, server, people and shots fixtures.
pytest_plugins = ["tests.web_support"]
pytestmark = pytest.mark.browser
expect.set_options(timeout=WAIT_MS)


def landscape_png(width: int = 640, height: int = 480) -> bytes:
    """A small drawn picture (sky, sun, hills) with grain, so that it is a few hundred
    kilobytes: enough for upload progress to be seen on a throttled link."""
    image = Image.new("RGB", (width, height))
    draw = ImageDraw.Draw(image)
    for y in range(height):
        t = y / height
        draw.line([(0, y), (width, y)], fill=(int(120 + 100 * t), int(170 + 60 * t), 245))
    draw.ellipse([width * 0.65, height * 0.12, width * 0.8, height * 0.32], fill=(255, 214, 90))
    draw.polygon([(0, height), (0, height * 0.7), (width * 0.35, height * 0.5),
                  (width * 0.7, height * 0.72), (width, height * 0.6), (width, height)], fill=(70, 150, 90))
    draw.polygon([(0, height), (width * 0.2, height * 0.78), (width * 0.55, height * 0.85),
                  (width, height * 0.75), (width, height)], fill=(40, 110, 70))
    rng = random.Random(8)
    pixels = image.load()
    for y in range(height):
        for x in range(width):
            r, g, b = pixels[x, y]
            n = rng.randint(-10, 10)
            pixels[x, y] = (max(0, min(255, r + n)), max(0, min(255, g + n)), max(0, min(255, b + n)))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


@pytest.fixture(scope="module")
def picture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pictures") / "hills.png"
    path.write_bytes(landscape_png())
    return path


def throttle_uploads(page: Any, bytes_per_second: int) -> None:
    """Slow this page's uploads (Chrome DevTools Protocol), so progress is visible."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", {
        "offline": False, "latency": 0, "downloadThroughput": -1,
        "uploadThroughput": bytes_per_second,
    })


def test_a_sticker_and_a_photo_reach_the_other_side(
        browser: Any, server: WebServer, people: list[Person], picture: Path, shots: Path) -> None:
    alice, bob, pa, pb = two_friends_chatting(browser, server, people)

    # A sticker from the picker (keyboard: the first sticker has focus when it opens).
    pa.click("#sticker-button")
    picker = pa.locator("#sticker-picker")
    expect(picker).to_be_visible()
    expect(picker.locator(".pack-tab")).to_have_count(len(server.running.get("/sticker/packs").list["rows"]))
    first = picker.locator(".sticker-choice").first
    expect(first).to_be_focused()
    url = first.get_attribute("data-url")
    assert url is not None and re.fullmatch(r"/asset/stickers/[a-z0-9_-]+/[\w-]+\.(svg|png|gif|webp)", url)
    pa.keyboard.press("Enter")
    expect(picker).to_be_hidden()
    for page in (pa, pb):
        sticker = page.locator("#messages li.msg .bubble.is-sticker img.sticker").last
        expect(sticker).to_have_attribute("src", url)
    expect(pa.locator("#messages li.msg").last).to_have_attribute("data-status", re.compile("^(sent|read)$"))
    expect(conversation_link(pb, "u", alice.id).locator(".conv-preview")).to_have_text("Sticker")

    # An emoji from the emoji picker goes into the text, at the caret.
    pa.locator("#message").fill("Look ")
    pa.click("#emoji-button")
    pa.locator('#emoji-picker button[aria-label="🌄"], #emoji-picker button[aria-label="😍"]').first.click()
    expect(pa.locator("#message")).to_have_value("Look 😍")
    pa.locator("#message").press("Escape")
    pa.locator("#message").press("Enter")
    expect(pb.locator("#messages li.msg p.text").last).to_have_text("Look 😍")

    # A photo: a progress bar while it uploads, then the thumbnail on both sides.
    throttle_uploads(pa, 150_000)
    pa.set_input_files("#attach-file", str(picture))
    uploading = pa.locator('#messages li.msg[data-status="uploading"]')
    expect(uploading.locator("progress")).to_be_visible()
    pa.wait_for_function("""() => {
        const bar = document.querySelector('#messages li.msg[data-status="uploading"] progress');
        return bar && bar.value > 0 && bar.value < 100;
    }""")
    photo = pa.locator('#messages li.msg[data-media="4"]').last
    expect(photo).to_have_attribute("data-status", re.compile("^(sent|read)$"))
    received = pb.locator("#messages li.msg .bubble.is-photo").last
    thumb = received.locator("img")
    expect(thumb).to_have_attribute("src", re.compile(r"^/resource/"))
    pb.wait_for_function("""() => {
        const imgs = document.querySelectorAll('#messages .is-photo img');
        const img = imgs[imgs.length - 1];
        return img && img.complete && img.naturalWidth > 0;
    }""")
    assert thumb.evaluate("img => img.naturalWidth") <= 640
    screenshot(pb, shots, "media")

    # Clicked, it opens full size in the lightbox; Escape closes it.
    received.locator("button.photo").click()
    lightbox = pb.locator("#lightbox")
    expect(lightbox).to_be_visible()
    full = pb.locator("#lightbox-img")
    expect(full).to_have_attribute("src", re.compile(r"^/resource/"))
    pb.wait_for_function("() => document.querySelector('#lightbox-img').naturalWidth === 640")
    pb.keyboard.press("Escape")
    expect(lightbox).to_be_hidden()
    for person in (alice, bob):
        assert person.errors == [] and person.dialogs == [], (person.nickname, person.errors)


def test_a_profile_picture_is_uploaded_and_seen_by_friends(
        browser: Any, server: WebServer, people: list[Person], picture: Path) -> None:
    alice, bob = make_person(server, "Alice"), make_person(server, "Bob")
    people += [alice, bob]
    befriend(server, alice, bob)
    pa = open_chat(browser, server, alice)
    pa.click("#tab-profile")
    pa.set_input_files("#avatar-file", str(picture))
    expect(pa.locator("#profile [data-ok]")).to_have_text("Photo updated.")
    expect(pa.locator("#me-avatar img")).to_have_attribute("src", re.compile(r"^/resource/"))
    avatar = server.running.get("/user/me", token=alice.token).data["avatar"]
    assert avatar.startswith("/resource/")
    pb = open_chat(browser, server, bob)
    expect(conversation_link(pb, "u", alice.id).locator(".avatar img")).to_have_attribute("src", avatar)
    assert alice.errors == [] and bob.errors == []


def test_a_file_that_is_not_an_image_is_refused_with_the_servers_reason(
        browser: Any, server: WebServer, people: list[Person], tmp_path: Path) -> None:
    alice, bob = make_person(server, "Alice"), make_person(server, "Bob")
    people += [alice, bob]
    befriend(server, alice, bob)
    pa = open_chat(browser, server, alice)
    open_conversation(pa, "u", bob.id)
    fake = tmp_path / "notes.png"
    fake.write_bytes(b"<html>not a picture</html>")
    pa.set_input_files("#attach-file", {"name": "notes.png", "mimeType": "image/png",
                                         "buffer": fake.read_bytes()})
    failed = pa.locator('#messages li.msg[data-status="failed"]')
    expect(failed.locator(".failure")).to_contain_text("Not sent:")
    failed.locator("button", has_text="Remove").click()
    expect(pa.locator("#messages li.msg")).to_have_count(0)
    rows = server.running.get(f"/chat/history?cmd=10&dstid={bob.id}", token=alice.token).list["rows"]
    assert rows == []
