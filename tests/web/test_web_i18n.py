"""The client in 简体中文 (issue 24, "Language"), in a real browser set to Chinese.

A browser whose language is zh-CN (Accept-Language and navigator.languages) gets every
page in Chinese, with `<html lang="zh-CN">`, times and days in Chinese, server errors
said in Chinese, and Chinese text drawn with a CJK font, not empty boxes. The language
switch on the profile and login pages is remembered across reloads and pages.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

pytest.register_assert_rewrite("tests.web_support")
from tests.web_support import (  # noqa: E402
    PHONE,
    WAIT_MS,
    Person,
    WebServer,
    befriend,
    chat_over_socket,
    make_person,
    new_context,
    open_chat,
    open_conversation,
    screenshot,
    send_text,
)

pytest_plugins = ["tests.web_support"]
pytestmark = pytest.mark.browser
expect.set_options(timeout=WAIT_MS)

ZH = "zh-CN"
#: A Latin word on a Chinese page whose names and messages are all Chinese: UI text left
#: in English (the product's name and the language switch's "English" aside).
LATIN_WORD = re.compile(r"\b(?!fastim\b|English\b|MB\b)[A-Za-z]{2,}\b")


def assert_all_chinese(locator: Any, what: str) -> None:
    text = locator.inner_text()
    found = LATIN_WORD.findall(text)
    assert not found, f"English left in {what}: {found}"


#: Every text of the page, shown or hidden (a panel yet to open, a label only a screen
#: reader says: text nodes, aria-label, title, placeholder, alt), but the keys on <kbd>.
PAGE_TEXTS = """() => {
  const texts = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const parent = node.parentElement;
    if (!parent || parent.closest('script, style, template, kbd')) continue;
    if (node.textContent.trim()) texts.push(`${parent.tagName}#${parent.id}: ${node.textContent.trim()}`);
  }
  for (const el of document.body.querySelectorAll('[aria-label], [title], [placeholder], [alt]')) {
    for (const name of ['aria-label', 'title', 'placeholder', 'alt']) {
      const value = el.getAttribute(name);
      if (value) texts.push(`${el.tagName}#${el.id}[${name}]: ${value}`);
    }
  }
  return texts;
}"""


def assert_no_english_in_page(page: Any, what: str) -> None:
    """No English UI text anywhere in the page, hidden parts included: what a user meets
    later (search results, a dialog) or a screen reader says is in the table too."""
    found = [text for text in page.evaluate(PAGE_TEXTS) if LATIN_WORD.search(text.split(": ", 1)[1])]
    assert not found, f"English left in {what}: {found}"


def fonts_of(page: Any, selector: str) -> list[str]:
    """The fonts Chromium really drew the element's text with (DevTools protocol)."""
    cdp = page.context.new_cdp_session(page)
    try:
        cdp.send("DOM.enable")
        cdp.send("CSS.enable")
        root = cdp.send("DOM.getDocument")["root"]["nodeId"]
        node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
        fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
        return [f["familyName"] for f in fonts if f["glyphCount"] > 0]
    finally:
        cdp.detach()


def test_the_chat_in_chinese(browser: Any, server: WebServer, people: list[Person],
                             shots: Path) -> None:
    # Names in Chinese too: they must render, not be boxes.
    li, wang = make_person(server, "李雷"), make_person(server, "王芳")
    people += [li, wang]
    befriend(server, li, wang)
    group = server.running.post("/contact/createcommunity",
                                {"name": "周末爬山群", "visibility": "public"},
                                token=li.token).data
    server.running.post("/contact/joincommunity", {"dstid": group["id"]}, token=wang.token)
    chat_over_socket(server, wang, 10, li.id, ["在吗？", "明天一起吃饭吧 🍜"])

    page = open_chat(browser, server, li, locale=ZH)
    assert page.evaluate("document.documentElement.lang") == ZH
    expect(page.locator("#tab-friends")).to_contain_text("聊天")
    expect(page.locator("#tab-groups")).to_contain_text("群聊")
    expect(page.locator("#conn-text")).to_have_text("已连接")
    expect(page.locator(f'a.conv-item[data-key="u{wang.id}"] .badge')).to_have_attribute(
        "aria-label", "2 条未读")

    open_conversation(page, "u", wang.id)
    expect(page.locator("#conv-title")).to_have_text("王芳")
    expect(page.locator("#messages li.day").first).to_have_text("今天")
    send_text(page, "好的，明天见！")
    mine = page.locator("#messages li.msg.mine").last
    expect(mine.locator(".status")).to_have_attribute("aria-label", re.compile("^(已送达|已读)$"))
    # The time is the locale's 24-hour clock, the title a Chinese date.
    assert re.fullmatch(r"\d\d:\d\d", mine.locator("time").inner_text())
    assert re.search(r"\d{4}年\d{1,2}月\d{1,2}日", mine.locator("time").get_attribute("title"))
    # The text is drawn with a CJK font (fonts-noto-cjk here), not with empty boxes.
    fonts = fonts_of(page, "#conv-title")
    assert any(re.search(r"CJK|WenQuanYi|Droid Sans Fallback", f) for f in fonts), fonts
    assert_all_chinese(page.locator("#app"), "the conversation")
    assert_no_english_in_page(page, "the chat page")
    page.click("#sticker-button")  # the packs' names and titles from their manifests
    expect(page.locator("#sticker-picker .sticker-choice").first).to_be_visible()
    assert_no_english_in_page(page, "the sticker picker")
    page.keyboard.press("Escape")
    screenshot(page, shots, "zh-chat-desktop")

    # The group's sheet as its owner sees it (settings, invites, requests, bans), and
    # the profile tab.
    open_conversation(page, "g", group["id"])
    page.click("#conv-members")
    expect(page.locator("#group-admin")).to_be_visible()
    expect(page.locator("#member-list li")).to_have_count(2)
    page.click("#invite-create")
    expect(page.locator("#invite-list li")).to_have_count(1)
    assert_all_chinese(page.locator("#members-dialog"), "the group's sheet")
    page.keyboard.press("Escape")
    page.click("#tab-profile")
    assert_all_chinese(page.locator("#panel-profile"), "the profile")
    page.click("#tab-friends")

    # A server refusal the user meets, said in Chinese (the API itself stays English).
    page.click("#tab-friends")
    page.fill("#friend-mobile", li.mobile)
    page.click("#add-friend button[type=submit]")
    expect(page.locator('#add-friend [data-error-for="mobile"]')).to_have_text("不能添加自己为好友")

    # A group on a phone, in the dark.
    phone = new_context(browser, server, wang, viewport=PHONE, scheme="dark", locale=ZH)
    try:
        pw = phone.new_page()
        pw.goto(f"/chat#/g/{group['id']}")
        expect(pw.locator("#conv-title")).to_have_text("周末爬山群")
        expect(pw.locator("#conv-sub")).to_have_text("2 位成员")
        send_text(pw, "大家好 👋")
        expect(page.locator(f'a.conv-item[data-key="g{group["id"]}"] .conv-preview')).to_have_text(
            "王芳：大家好 👋")
        expect(pw.locator("#messages li.msg.mine .status")).to_have_attribute(
            "aria-label", re.compile("^(已送达|1 人已读)$"))
        screenshot(pw, shots, "zh-group-phone-dark")
    finally:
        phone.close()


def test_the_language_switch_is_remembered(browser: Any, server: WebServer,
                                           people: list[Person]) -> None:
    han = make_person(server, "Han")
    people.append(han)
    page = open_chat(browser, server, han)  # an English browser
    assert page.evaluate("document.documentElement.lang") == "en"
    page.click("#tab-profile")
    expect(page.locator("#logout")).to_have_text("Log out")
    with page.expect_navigation():
        page.select_option("#panel-profile select[data-lang-switch]", ZH)
    page.wait_for_selector('#conn[data-state="online"]', state="attached")
    assert page.evaluate("document.documentElement.lang") == ZH
    expect(page.locator("#logout")).to_have_text("退出登录")
    expect(page.locator("#panel-profile select[data-lang-switch]")).to_have_value(ZH)
    # Remembered: a reload, and the login page the server renders, stay Chinese.
    page.reload()
    expect(page.locator("#tab-friends")).to_contain_text("聊天")
    page.goto("/login")
    assert page.evaluate("document.documentElement.lang") == ZH
    expect(page.locator("h1")).to_have_text("登录")
    # The cookie lost (expired, cleared): localStorage still knows, and puts it back, so
    # the server's next page is Chinese again.
    page.context.clear_cookies(name="fastim_lang")
    page.reload()
    page.wait_for_function("() => document.cookie.includes('fastim_lang=zh-CN')")
    page.reload()
    expect(page.locator("h1")).to_have_text("登录")
    assert_no_english_in_page(page, "the login page")
    # Wrong password: the server's error, in Chinese, under the form.
    page.fill("#mobile", han.mobile)
    page.fill("#passwd", "not the password")
    page.click('button[type="submit"]')
    expect(page.locator('[data-error-for="form"]')).to_have_text("手机号或密码错误")
    # And back to English from the login page.
    with page.expect_navigation():
        page.select_option("select[data-lang-switch]", "en")
    expect(page.locator("h1")).to_have_text("Log in")
    assert page.evaluate("document.documentElement.lang") == "en"
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    assert cookies["fastim_lang"] == "en"


def test_a_chinese_browser_registers_in_chinese(browser: Any, server: WebServer,
                                               shots: Path) -> None:
    context = new_context(browser, server, viewport=PHONE, locale=ZH)
    try:
        page = context.new_page()
        page.goto("/register")
        expect(page.locator("h1")).to_have_text("注册账号")
        assert_no_english_in_page(page, "the register page")
        page.fill("#mobile", "12ab")
        page.fill("#nickname", "小明")
        page.fill("#passwd", "short")
        page.click('button[type="submit"]')
        expect(page.locator('[data-error-for="mobile"]')).to_have_text(
            "请输入手机号：5 到 15 位数字，可以 + 开头。")
        expect(page.locator('[data-error-for="passwd"]')).to_have_text("密码至少需要 8 个字符。")
        screenshot(page, shots, "zh-register-phone")
    finally:
        context.close()


def test_the_search_panel_in_chinese(browser: Any, server: WebServer,
                                     people: list[Person]) -> None:
    """The search panel's own words (its title, the list's name, Older results, Close
    search) are in Chinese on a Chinese page, as the box and the status are."""
    han, mei = make_person(server, "韩梅梅"), make_person(server, "李明")
    people += [han, mei]
    befriend(server, han, mei)
    chat_over_socket(server, mei, 10, han.id, ["周五一起看电影"])
    server.running.call(server.running.app.services.search.indexer.catch_up())
    page = open_chat(browser, server, han, locale=ZH)
    page.fill("#search-q", "周五")
    page.press("#search-q", "Enter")
    expect(page.locator("#search-list li")).to_have_count(1)
    expect(page.locator("#search-status")).to_have_text("找到 1 条消息")
    assert_all_chinese(page.locator("#search-results"), "the search panel")
    expect(page.locator("#search-title")).to_have_text("搜索结果")
    expect(page.locator("#search-list")).to_have_attribute("aria-label", "找到的消息")
    expect(page.locator("#search-more")).to_have_text("更早的结果")  # hidden: one page
    page.click("#search-close")
    expect(page.locator("#search-results")).to_be_hidden()
