"""The UI's languages (issue 24): the two tables agree, every key the templates and the
scripts ask for is in both, and the pages come in the language the visitor asked for.

A missing key is a failure here, never a blank on screen: the scripts' `t('…')` and
`tn('…', n)` calls and the templates' `t("…")` are read from the source, and each key
must be in asset/i18n/en.json and asset/i18n/zh-CN.json with the same placeholders.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_app_views import AppThread

from fastim import i18n
from fastim.app import create_app
from fastim.config import Config
from fastim.http import Limits

ROOT = Path(__file__).resolve().parents[2]
TABLES = ROOT / "asset" / "i18n"
KEY = r"([a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+)"
#: t('key' / t("key" / tn('key' in the scripts; t("key" / t('key' in the templates.
JS_CALL = re.compile(r"\b(tn?)\(\s*['\"]" + KEY + r"['\"]")
TEMPLATE_CALL = re.compile(r"\bt\(\s*['\"]" + KEY + r"['\"]")
TITLE_KEY = re.compile(r"title_key=\"" + KEY + "\"")
#: texts.text(lang, "key" in the server's own texts (Web Push, fastim/notify/push.py).
SERVER_TEXT = re.compile(r"\.text\(\s*\w+,\s*['\"]" + KEY + r"['\"]")
#: Keys found at run time rather than in a call: the server's error messages recognised
#: by their English text (asset/js/i18n.js, errorText), the chat error codes, field names.
DYNAMIC = ("error.", "chat_error.", "field.")


def table(language: str) -> dict[str, str]:
    return json.loads((TABLES / f"{language}.json").read_text(encoding="utf-8"))


def scripts() -> Iterator[Path]:
    # The /learn page keeps its own two tables (asset/js/learn/strings.js).
    for path in sorted((ROOT / "asset" / "js").rglob("*.js")):
        if "learn" not in path.relative_to(ROOT / "asset" / "js").parts:
            yield path


def used_keys() -> dict[str, str]:
    """Every key the UI asks for, with where it was first seen."""
    keys: dict[str, str] = {}
    for path in scripts():
        for kind, key in JS_CALL.findall(path.read_text(encoding="utf-8")):
            keys.setdefault(key, path.name)
            if kind == "tn":
                keys.setdefault(f"{key}_one", path.name)
    for path in sorted((ROOT / "views").glob("*.html")):
        for key in TEMPLATE_CALL.findall(path.read_text(encoding="utf-8")):
            keys.setdefault(key, path.name)
    for path in sorted((ROOT / "fastim" / "handlers").glob("*.py")):
        for key in TITLE_KEY.findall(path.read_text(encoding="utf-8")):
            keys.setdefault(key, path.name)
    for path in sorted((ROOT / "fastim" / "notify").glob("*.py")):
        for key in SERVER_TEXT.findall(path.read_text(encoding="utf-8")):
            keys.setdefault(key, path.name)
    return keys


def test_the_tables_are_flat_sorted_and_have_the_same_keys_and_placeholders() -> None:
    en, zh = table("en"), table("zh-CN")
    assert sorted(en) == sorted(zh), (
        f"only in en: {sorted(set(en) - set(zh))}; only in zh-CN: {sorted(set(zh) - set(en))}")
    for key in en:
        assert re.fullmatch(KEY, key), f"{key!r} is not area.name in lower_snake"
        assert i18n.placeholders(en[key]) == i18n.placeholders(zh[key]), key
        assert zh[key] != "" or en[key] == "", f"{key} has no Chinese"
    for language in i18n.LANGUAGES:
        text = (TABLES / f"{language}.json").read_text(encoding="utf-8")
        # One key a line, 2-space indent, keys sorted: merges stay line-by-line.
        assert text == json.dumps(dict(sorted(table(language).items())), ensure_ascii=False,
                                  indent=2) + "\n", f"{language}.json is not in its canonical form"


def test_every_key_the_ui_asks_for_is_in_both_tables() -> None:
    keys = used_keys()
    assert len(keys) > 200  # the scan sees the calls (a broken pattern would pass anything)
    for language in i18n.LANGUAGES:
        missing = sorted(f"{key} ({where})" for key, where in keys.items()
                         if key not in table(language))
        assert not missing, f"missing from {language}.json: {missing}"


def test_no_key_is_left_unused() -> None:
    keys = used_keys()
    unused = sorted(k for k in table("en") if k not in keys and not k.startswith(DYNAMIC))
    assert not unused, f"keys nothing asks for: {unused}"


def server_strings() -> list[str]:
    """Every string literal of the server (f-strings' fixed parts included; adjacent
    literals are one, as Python joins them)."""
    found: list[str] = []
    for path in (ROOT / "fastim").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                found.append(node.value)
    return found


def test_each_translated_error_is_a_message_the_server_sends() -> None:
    """An `error.*` entry is recognised by its English text: if the server's wording
    changes, the entry must follow, or the user would see the English again."""
    literals = server_strings()
    for key, template in table("en").items():
        if not key.startswith("error.") or key in ("error.unreachable", "error.http_status"):
            continue
        for part in re.split(r"\{[a-z_]+\}", template):
            assert not part.strip() or any(part in s for s in literals), (
                f"{key}: no server message contains {part!r}")


@pytest.mark.parametrize(("cookie", "header", "expected"), [
    (None, None, "en"),
    (None, "zh-CN,zh;q=0.9,en;q=0.8", "zh-CN"),
    (None, "zh-TW", "zh-CN"),
    (None, "fr-FR, en;q=0.5, zh;q=0.4", "en"),
    (None, "fr, zh;q=0.1", "zh-CN"),
    (None, "en;q=0.2, zh-Hans;q=0.8", "zh-CN"),
    (None, "zh;q=0, en", "en"),
    (None, "de, *;q=0.5", "en"),
    (None, ";;;,q=,zh;q=abc", "en"),
    ("zh-CN", "en", "zh-CN"),
    ("en", "zh-CN", "en"),
    ("klingon", "zh-CN", "zh-CN"),
])
def test_the_language_is_the_remembered_choice_else_accept_language(
        cookie: str | None, header: str | None, expected: str) -> None:
    assert i18n.negotiate(cookie, header) == expected


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppThread]:
    tmp = tmp_path_factory.mktemp("i18n")
    config = Config(port=0, data_dir=tmp / "data", resource_dir=tmp / "resource",
                    limits=Limits(shutdown_timeout=2))
    with AppThread(create_app(config)) as thread:
        yield thread


@pytest.mark.parametrize(("headers", "lang", "heading"), [
    ([], "en", "Log in"),
    ([("Accept-Language", "zh-CN,zh;q=0.9")], "zh-CN", "登录"),
    ([("Accept-Language", "zh-CN"), ("Cookie", f"{i18n.COOKIE}=en")], "en", "Log in"),
    ([("Accept-Language", "en-GB"), ("Cookie", f"{i18n.COOKIE}=zh-CN")], "zh-CN", "登录"),
])
def test_pages_come_in_the_language_asked_for(
        running: AppThread, headers: list[tuple[str, str]], lang: str, heading: str) -> None:
    response = running.get("/login", headers)
    assert response.status == 200
    body = response.body.decode()
    assert f'<html lang="{lang}">' in body
    assert f"<h1>{heading}</h1>" in body
    assert "Accept-Language" in response.header("vary")


def test_every_page_renders_in_chinese_with_no_key_left(running: AppThread) -> None:
    zh = [("Accept-Language", "zh-CN")]
    for path in ("/login", "/register", "/chat", "/join/nosuchcode"):
        body = running.get(path, zh).body.decode()
        assert '<html lang="zh-CN">' in body, path
        # A key shown as itself would look like area.name between tags or in an attribute.
        assert not re.search(r"[>\"]" + KEY + r"[<\"]", body.replace('"' + "zh-CN" + '"', "")
                             .replace("lang-switch", "")), path
    chat = running.get("/chat", zh).body.decode()
    for text in ("好友", "群聊", "退出登录", "发送", "群成员"):
        assert text in chat
