"""Shared pieces of the variant tests (no tests here): readers with section choices and pauses,
and what a sent .eml holds (its sections, its lead, its subject)."""

from __future__ import annotations

import email
import json
import re
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from pathlib import Path

from newsletter.store import Store
from newsletter.tokens import unsubscribe_token

#: the sample week's sections, its signals by section, and its lead per set of sections
SECTIONS = ("AI", "Energy", "Markets")
CHIPMAKER = "Chipmaker guides capex up 40% on inference demand"  # Markets, score 82
POST_TRAINING = "Post-training is (Massive) Supervised Learning"  # AI, 75
INTERCONNECTION = "Interconnection queue reform filed for data-centre loads"  # Energy, 68
#: the strongest signal of each set of sections (the variant's lead and subject)
LEADS = {
    ("AI", "Energy", "Markets"): CHIPMAKER,
    ("AI", "Energy"): POST_TRAINING,
    ("Energy",): INTERCONNECTION,
    ("AI",): POST_TRAINING,
    ("Energy", "Markets"): CHIPMAKER,
    ("AI", "Markets"): CHIPMAKER,
    ("Markets",): CHIPMAKER,
}
#: signals per section in the sample week
SIGNALS = {"AI": 1, "Energy": 2, "Markets": 1}


def choose(store: Store, address: str, *, off: tuple[str, ...] = (), paused_until=None) -> None:
    """What a reader's preferences page stores: the sections turned off, and a pause."""
    store.db.execute(
        "UPDATE subscribers SET sections_off = ?, paused_until = ? WHERE email = ?",
        [json.dumps(sorted(off)), paused_until, address],
    )


@dataclass
class Mail:
    message: EmailMessage
    path: Path | None = None

    @classmethod
    def read(cls, data: bytes, path: Path | None = None) -> Mail:
        parsed = email.message_from_bytes(data, policy=policy.default)
        return cls(parsed, path)  # type: ignore[arg-type]

    @property
    def to(self) -> str:
        return str(self.message["To"]).rsplit("<", 1)[-1].rstrip(">")

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        part = self.message.get_body(("plain",))
        assert part is not None
        return part.get_content()

    @property
    def html(self) -> str:
        part = self.message.get_body(("html",))
        assert part is not None
        return part.get_content()

    @property
    def sections(self) -> tuple[str, ...]:
        """The categories of the cards the text part holds, sorted (the lead's included)."""
        return tuple(sorted(set(re.findall(r"^--- Signal · ([^·]+?) ·", self.text, re.M))))

    @property
    def cards(self) -> int:
        return len(re.findall(r"^--- Signal · ", self.text, re.M))

    @property
    def lead(self) -> str:
        """The title of the card under LEAD STORY."""
        after = self.text.split("== LEAD STORY ==", 1)[1]
        return after.strip().splitlines()[1].strip()

    def unsubscribe_works_for(self, secret: str, subscriber_id: int, nonce: str) -> bool:
        token = unsubscribe_token(secret, subscriber_id, nonce)
        return f"/unsubscribe/{token}" in str(self.message["List-Unsubscribe"])


def outbox_mails(folder: Path) -> list[Mail]:
    return [Mail.read(path.read_bytes(), path) for path in sorted(folder.glob("*.eml"))]
