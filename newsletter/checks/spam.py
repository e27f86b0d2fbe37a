"""Spam score: SpamAssassin's stock rules, run locally (`-L`: no DNS or network tests)."""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

from newsletter.checks.parsed import Parsed
from newsletter.checks.report import Finding, error, info, warning

WARN_SCORE = 2.0
INSTALL = "install it (Debian/Ubuntu: sudo apt-get install spamassassin) and run the check again"
_TOTAL = re.compile(r"Content analysis details:\s+\((-?[\d.]+) points, (-?[\d.]+) required\)")
_RULE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s+([A-Z0-9_]+)\s+(.*)$")


@dataclass(frozen=True)
class Rule:
    points: float
    name: str
    description: str


@dataclass(frozen=True)
class SpamScore:
    score: float
    required: float
    rules: tuple[Rule, ...]


def find_spamassassin() -> str | None:
    return shutil.which("spamassassin")


def spam_score(raw: bytes, binary: str, timeout: float = 120.0) -> SpamScore:
    """Score one message; raises RuntimeError with SpamAssassin's own words when it fails."""
    try:
        done = subprocess.run(
            [binary, "-L", "-t"], input=raw, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"spamassassin did not finish within {timeout:.0f} s") from None
    except OSError as exc:
        raise RuntimeError(f"cannot run {binary}: {exc.strerror}") from None
    return parse_report(
        done.stdout.decode("utf-8", "replace"), done.stderr.decode(errors="replace")
    )


def parse_report(output: str, stderr: str = "") -> SpamScore:
    """The score and fired rules from the report `-t` appends to the message."""
    at = output.rfind("Content analysis details:")
    match = _TOTAL.match(output, at) if at >= 0 else None
    if match is None:
        last = (stderr.strip().splitlines() or ["no report in its output"])[-1]
        raise RuntimeError(f"spamassassin gave no score: {last}")
    rules: list[Rule] = []
    for line in output[match.end() :].splitlines():
        rule = _RULE.match(line)
        if rule:
            rules.append(Rule(float(rule[1]), rule[2], rule[3].strip()))
        elif rules and line.startswith(" " * 10) and line.strip():
            previous = rules[-1]
            rules[-1] = Rule(
                previous.points, previous.name, f"{previous.description} {line.strip()}"
            )
    return SpamScore(float(match[1]), float(match[2]), tuple(rules))


def check_spam(message: Parsed, binary: str | None) -> list[Finding]:
    if binary is None:
        return [info("spam", "spam score not checked: SpamAssassin is not installed", INSTALL)]
    try:
        result = spam_score(message.raw, binary)
    except RuntimeError as exc:
        return [warning("spam", f"spam score not checked: {exc}", INSTALL)]
    fired = [r for r in result.rules if r.points != 0]
    rules = ", ".join(f"{r.name} {r.points:+.1f} ({r.description})" for r in fired) or "none"
    score = round(result.score, 1) or 0.0  # SpamAssassin prints -0.0 when only -0.0 rules fire
    text = f"SpamAssassin score {score:.1f} (spam at {result.required:.1f}); rules: {rules}"
    fix = "rework what the rules above flag (wording, images, hidden text, links)"
    if result.score >= result.required:
        return [error("spam", text, fix)]
    if result.score >= WARN_SCORE:
        return [warning("spam", text, fix)]
    return [info("spam", text)]
