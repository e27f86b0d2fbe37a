"""What a pre-flight check finds, and the report the CLI, `send` and the preview show."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from html import escape

#: every check, in the order they run (`newsletter check --skip NAME`)
CHECKS = ("size", "lint", "content", "auth", "spam", "links", "render")


class Level(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class Finding:
    """One observation: how bad, which check, what is wrong, and the one-line fix."""

    level: Level
    check: str
    message: str
    fix: str = ""
    #: which variant of the dispatch it was found in, when a send has several (issue 14)
    variant: str = ""

    @property
    def where(self) -> str:
        return f" (variant: {self.variant})" if self.variant else ""


def error(check: str, message: str, fix: str = "") -> Finding:
    return Finding(Level.ERROR, check, message, fix)


def warning(check: str, message: str, fix: str = "") -> Finding:
    return Finding(Level.WARNING, check, message, fix)


def info(check: str, message: str, fix: str = "") -> Finding:
    return Finding(Level.INFO, check, message, fix)


_ORDER = {Level.ERROR: 0, Level.WARNING: 1, Level.INFO: 2}


@dataclass
class Report:
    """Every finding of one run, most serious first when shown."""

    subject: str = ""
    findings: list[Finding] = field(default_factory=list)

    def extend(self, findings: list[Finding]) -> None:
        self.findings.extend(findings)

    def by_level(self, level: Level) -> list[Finding]:
        return [f for f in self.findings if f.level == level]

    @property
    def errors(self) -> list[Finding]:
        return self.by_level(Level.ERROR)

    @property
    def warnings(self) -> list[Finding]:
        return self.by_level(Level.WARNING)

    @property
    def ok(self) -> bool:
        """True when nothing blocks sending (warnings do not)."""
        return not self.errors

    def sorted(self) -> list[Finding]:
        return sorted(self.findings, key=lambda f: _ORDER[f.level])

    def summary(self) -> str:
        return (
            f"{len(self.errors)} error(s), {len(self.warnings)} warning(s),"
            f" {len(self.by_level(Level.INFO))} note(s)"
        )

    def to_text(self) -> str:
        lines = [f"pre-flight checks: {self.subject}"] if self.subject else []
        for f in self.sorted():
            lines.append(f"{f.level.upper():8} {f.check:8} {f.message}{f.where}")
            if f.fix:
                lines.append(f"{'':17}fix: {f.fix}")
        lines.append(self.summary())
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        return {
            "subject": self.subject,
            "ok": self.ok,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "findings": [{**asdict(f), "level": str(f.level)} for f in self.sorted()],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def to_html(self) -> str:
        """A self-contained panel (escaped) the preview server can embed beside the two views."""
        colours = {Level.ERROR: "#b42318", Level.WARNING: "#b54708", Level.INFO: "#475467"}
        rows = "".join(
            f'<tr><td style="color:{colours[f.level]};font-weight:600">{escape(f.level)}</td>'
            f"<td>{escape(f.check)}</td><td>{escape(f.message + f.where)}"
            + (f'<br><small style="color:#475467">fix: {escape(f.fix)}</small>' if f.fix else "")
            + "</td></tr>"
            for f in self.sorted()
        )
        return (
            '<section class="preflight-report" style="font:14px/1.45 system-ui,sans-serif">'
            f'<h2 style="font-size:16px">Pre-flight checks: {escape(self.summary())}</h2>'
            '<table style="border-collapse:collapse" cellpadding="4">'
            "<thead><tr><th align=left>level</th><th align=left>check</th>"
            f"<th align=left>finding</th></tr></thead><tbody>{rows}</tbody></table></section>"
        )
