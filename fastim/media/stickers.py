"""Sticker packs: directories under ``asset/stickers/`` with an ``info.json`` manifest.

The manifest keeps the fields of fastIM's ``info.json`` (``id``, ``icon``, ``size``,
``assets``: file names in the pack's directory) and adds ``name`` (shown in the picker),
``titles`` (a short text per sticker, for ``alt``/``title`` and screen readers) and
``i18n``, the name and titles in the client's other languages (fastim.i18n.LANGUAGES),
so that a Chinese page does not name its stickers in English::

    {"id": "blob", "name": "Blob", "size": "big", "icon": "happy.svg",
     "assets": ["happy.svg", "sad.svg"], "titles": {"happy.svg": "happy"},
     "i18n": {"zh-CN": {"name": "小团子", "titles": {"happy.svg": "开心"}}}}

Packs are read once at start-up; a pack whose manifest is wrong (a missing file, a name
that is not a plain file name, an id that is not its directory's name) is left out and
logged, so one broken pack cannot keep the server from starting.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastim.i18n import LANGUAGES

log = logging.getLogger(__name__)

#: A pack id: also its directory name and a URL segment.
PACK_ID = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")
#: A sticker file: a plain name (no directory, no leading dot) of an image type browsers
#: show in <img>, and only characters the chat hub accepts in a message `url`.
STICKER_FILE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}\.(?:svg|png|gif|webp)")
SIZES = ("small", "big")


class PackError(ValueError):
    """A sticker pack's manifest does not describe the pack."""


@dataclass(frozen=True)
class Sticker:
    """One sticker: its URL (sent as a chat message's ``url`` with ``media`` 4)."""

    url: str
    title: str
    #: The title in other languages: {"zh-CN": "开心"}.
    titles: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StickerPack:
    """A pack as the client sees it."""

    id: str
    name: str
    size: str
    icon: str
    stickers: tuple[Sticker, ...]
    #: The name in other languages: {"zh-CN": "小团子"}.
    names: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "names": dict(self.names),
            "size": self.size,
            "icon": self.icon,
            "assets": [{"url": s.url, "title": s.title, "titles": dict(s.titles)}
                       for s in self.stickers],
        }


def _translations(pack_id: str, manifest: dict[str, Any], assets: list[str]
                  ) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """The manifest's ``i18n``: the pack's name per language, and per file its titles
    per language ({"happy.svg": {"zh-CN": "开心"}})."""
    translations = manifest.get("i18n", {})
    if not isinstance(translations, dict):
        raise PackError(f"{pack_id}: i18n must map languages to a name and titles")
    names: dict[str, str] = {}
    titles: dict[str, dict[str, str]] = {}
    for language, texts in translations.items():
        if language not in LANGUAGES:
            raise PackError(f"{pack_id}: i18n has {language!r}, not one of {LANGUAGES}")
        if not isinstance(texts, dict):
            raise PackError(f"{pack_id}: i18n.{language} must hold a name and titles")
        name = texts.get("name")
        if name is not None:
            if not isinstance(name, str) or not name.strip():
                raise PackError(f"{pack_id}: i18n.{language}.name must be a non-empty string")
            names[language] = name.strip()
        local = texts.get("titles", {})
        if not isinstance(local, dict) or not all(isinstance(v, str) for v in local.values()):
            raise PackError(f"{pack_id}: i18n.{language}.titles must map file names to text")
        for filename, title in local.items():
            if filename not in assets:
                raise PackError(f"{pack_id}: i18n.{language}.titles names {filename!r},"
                                " which is not in assets")
            titles.setdefault(filename, {})[language] = title
    return names, titles


def load_pack(directory: Path, url_prefix: str) -> StickerPack:
    """Read and check one pack; raises :class:`PackError` saying what is wrong."""
    try:
        manifest = json.loads((directory / "info.json").read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise PackError(f"{directory.name}: cannot read info.json: {exc}") from None
    if not isinstance(manifest, dict):
        raise PackError(f"{directory.name}: info.json must hold a JSON object")
    pack_id = manifest.get("id")
    if pack_id != directory.name or not isinstance(pack_id, str) or not PACK_ID.fullmatch(pack_id):
        raise PackError(f"{directory.name}: id must be the directory's name ({pack_id!r})")
    name = manifest.get("name")
    if not isinstance(name, str) or not name.strip():
        raise PackError(f"{pack_id}: name must be a non-empty string")
    size = manifest.get("size", "big")
    if size not in SIZES:
        raise PackError(f"{pack_id}: size must be one of {SIZES}")
    assets = manifest.get("assets")
    if not isinstance(assets, list) or not assets:
        raise PackError(f"{pack_id}: assets must be a non-empty list of file names")
    titles = manifest.get("titles", {})
    if not isinstance(titles, dict):
        raise PackError(f"{pack_id}: titles must map file names to text")
    base = f"{url_prefix}{pack_id}/"
    stickers = []
    for filename in [*assets, manifest.get("icon")]:
        if not isinstance(filename, str) or not STICKER_FILE.fullmatch(filename):
            raise PackError(f"{pack_id}: {filename!r} is not a plain sticker file name")
        if not (directory / filename).is_file():
            raise PackError(f"{pack_id}: {filename} is listed but does not exist")
    if len(set(assets)) != len(assets):
        raise PackError(f"{pack_id}: a file is listed twice")
    names, translated = _translations(pack_id, manifest, assets)
    for filename in assets:
        title = titles.get(filename, filename.rsplit(".", 1)[0])
        stickers.append(Sticker(base + filename, str(title), translated.get(filename, {})))
    return StickerPack(pack_id, name.strip(), size, base + manifest["icon"], tuple(stickers),
                       names)


def load_packs(root: Path, url_prefix: str = "/asset/stickers/") -> list[StickerPack]:
    """Every valid pack under `root`, in directory-name order; broken ones are logged."""
    packs: list[StickerPack] = []
    if not root.is_dir():
        return packs
    for directory in sorted(p for p in root.iterdir() if p.is_dir()):
        if directory.name.startswith("."):
            continue
        try:
            packs.append(load_pack(directory, url_prefix))
        except PackError as exc:
            log.error("sticker pack left out: %s", exc)
    return packs
