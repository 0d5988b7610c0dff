"""Bilingual text: the one type every part of queuehall uses for a text in Chinese and English.

Hall names, service names, materials, pause reasons and notices from hall.toml (broker/config.py), the screens'
fixed texts (the kiosk's, the counter's, the display's), the messages of errors (:class:`~queuehall.errors.
QueuehallError`) and the ticket's lines are all :class:`Bi`. It also reads as the ``(zh, en)`` pair older code
unpacks (``zh, en = text``), and converts from and to the wire's ``{"zh": …, "en": …}`` and ``name_zh``/``name_en``
fields.

Pure Python (core layer).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True, eq=False)
class Bi:
    """A text in both languages; ``pick(lang)`` gives ``(primary, secondary)``, ``text(lang)`` one of them."""

    zh: str
    en: str

    def pick(self, lang: str) -> tuple[str, str]:
        """``(text in lang, text in the other language)``."""
        return (self.zh, self.en) if lang == "zh" else (self.en, self.zh)

    def __call__(self, lang: str) -> str:
        return self.zh if lang == "zh" else self.en

    def __iter__(self) -> Iterator[str]:  # zh, en = text
        yield self.zh
        yield self.en

    def __getitem__(self, index: int) -> str:  # text[0] is the Chinese, text[1] the English
        return (self.zh, self.en)[index]

    def __eq__(self, other: object) -> bool:  # equal to another Bi, or to the (zh, en) pair it stands for
        if isinstance(other, Bi):
            return self.zh == other.zh and self.en == other.en
        if isinstance(other, tuple):
            return (self.zh, self.en) == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.zh, self.en))

    def format(self, **values: Any) -> Bi:
        """Both texts with ``{placeholders}`` filled."""
        return Bi(self.zh.format(**values), self.en.format(**values))

    def to_dict(self) -> dict[str, str]:
        """The wire's form: ``{"zh": …, "en": …}``."""
        return {"zh": self.zh, "en": self.en}

    @classmethod
    def of(cls, value: Any, default: Bi | None = None) -> Bi:
        """A Bi from the wire's ``{"zh", "en"}``, a ``(zh, en)`` pair, another Bi or one string (both languages);
        ``default`` (or an empty text) for anything else."""
        if isinstance(value, Bi):
            return value
        if isinstance(value, Mapping):
            return cls(str(value.get("zh") or ""), str(value.get("en") or ""))
        if isinstance(value, tuple | list) and len(value) == 2:
            return cls(str(value[0] or ""), str(value[1] or ""))
        if isinstance(value, str):
            return cls(value, value)
        return default if default is not None else EMPTY

    @classmethod
    def fields(cls, record: Mapping[str, Any], prefix: str) -> Bi:
        """The text of a record's ``<prefix>_zh`` and ``<prefix>_en`` fields (e.g. ``name_zh``, ``name_en``)."""
        return cls(str(record.get(f"{prefix}_zh") or ""), str(record.get(f"{prefix}_en") or ""))


EMPTY = Bi("", "")

# The JSON Schema of a Bi's wire form (``to_dict``), for the documents that describe it (the web gateway's OpenAPI
# document and its city hall schema).
JSON_SCHEMA: dict[str, Any] = {"type": "object", "required": ["zh", "en"],
                               "properties": {"zh": {"type": "string"}, "en": {"type": "string"}}}
