"""Variants at the command line and in the pre-flight checks: `send --dry-run` and `deliveries`
count per variant, `preview --sections` shows one, and every variant a send will mail is
checked, each finding naming its variant."""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import pytest
from test_check_send import load_sample
from test_send_support import WEEK, add_subscribers, ready_week
from variant_support import CHIPMAKER, POST_TRAINING, Mail, choose

from newsletter.checks import Tools
from newsletter.checks.gate import PreflightError, preflight
from newsletter.checks.preflight import run_checks
from newsletter.delivery.compose import Composer
from newsletter.delivery.variants import variant_rendering
from newsletter.dispatch.build import approve, build_dispatch
from newsletter.preview import SAMPLE_READER, preview_message
from newsletter.settings import Settings
from newsletter.store import Store

DAY = 86_400.0
VENV_ONLY = str(Path(sys.executable).parent)  # no SpamAssassin or Chromium: not under test here


@pytest.fixture
def readers(store: Store, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Five readers: two with everything, two AI + Energy, one paused (the sample week)."""
    monkeypatch.setenv("PATH", VENV_ONLY)
    ready_week(store, settings)
    emails = add_subscribers(store, 5)
    for address in emails[2:4]:
        choose(store, address, off=("Markets",))
    choose(store, emails[4], paused_until=time.time() + 21 * DAY)
    return emails


def test_a_dry_run_counts_per_variant_and_freezes_nothing(run, store: Store, readers) -> None:
    result = run("send", "--week", str(WEEK), "--dry-run")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "4 messages built (dry run), none sent" in out
    assert "  all sections (AI, Energy, Markets): 2" in out
    assert "  AI, Energy: 2" in out
    assert "  skipped, paused: 1" in out
    row = store.dispatches.get(str(WEEK))
    assert row["status"] == "approved" and row["html"] is None
    assert store.variants.of(row["id"]) == []


def test_deliveries_counts_per_variant_after_a_send(run, store: Store, readers) -> None:
    sent = run("send", "--week", str(WEEK))
    assert sent.exit_code == 0, sent.output
    assert "sent by variant (sections)" in sent.stdout and "  AI, Energy: 2" in sent.stdout
    result = run("deliveries", "--week", str(WEEK))
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "  sent     4" in out and "  skipped  1" in out
    assert "by variant (sections):" in out
    assert "  all sections (AI, Energy, Markets): 2 sent" in out
    assert "  AI, Energy: 2 sent" in out
    assert "  skipped, paused until " in out and ": 1" in out
    assert "partly sent" not in out  # a skipped reader leaves nothing unresolved


def test_preview_sections_shows_one_variant(run, store: Store, settings: Settings, readers) -> None:
    text = run("preview", "--week", str(WEEK), "--sections", "energy,AI", "--text")
    assert text.exit_code == 0, text.output
    kickers = set(re.findall(r"^--- Signal · ([^·]+?) ·", text.stdout, re.M))
    assert kickers == {"AI", "Energy"} and "== ENERGY ==" in text.stdout
    assert "== MARKETS ==" not in text.stdout and CHIPMAKER not in text.stdout
    lead = text.stdout.split("== LEAD STORY ==", 1)[1].strip().splitlines()[1]
    assert lead == POST_TRAINING

    written = run("preview", "--week", str(WEEK), "--sections", "AI,Energy", "-o", "v.html")
    assert written.exit_code == 0, written.output
    page = Path("v.html").read_text(encoding="utf-8")
    assert POST_TRAINING in page and CHIPMAKER not in page
    everything = run("preview", "--week", str(WEEK), "--sections", "AI,Energy,Markets", "--text")
    assert CHIPMAKER in everything.stdout  # all sections: the dispatch itself

    bad = run("preview", "--week", str(WEEK), "--sections", "AI,Crypto", "--text")
    assert bad.exit_code == 1
    assert "no section 'Crypto' this week (there are: AI, Markets, Energy)" in bad.output

    test_mail = run(
        "preview", "--week", str(WEEK), "--sections", "Energy", "--to", "ed@example.org"
    )
    assert test_mail.exit_code == 0, test_mail.output
    (path,) = (Path(settings.outbox) / str(WEEK)).glob("*.eml")
    mail = Mail.read(path.read_bytes())
    assert mail.sections == ("Energy",) and mail.subject.startswith("[TEST] Interconnection")


def test_after_the_send_preview_sections_shows_the_frozen_variant(
    run, store: Store, settings: Settings, readers
) -> None:
    assert run("send", "--week", str(WEEK)).exit_code == 0
    dispatch_id = store.dispatches.get(str(WEEK))["id"]
    stored = store.variants.get(dispatch_id, ("AI", "Energy"))
    assert stored is not None
    secret = store.secret_key(settings.secret_key)
    frozen = Composer(variant_rendering(stored), settings, secret, str(WEEK)).compose(SAMPLE_READER)
    shown = preview_message(store, settings, WEEK, sections="AI,Energy")
    assert shown == (frozen.html, frozen.text)


FAKE_SPAMASSASSIN = """#!{python}
import sys
raw = sys.stdin.buffer.read()
subject = next(l for l in raw.decode().splitlines() if l.startswith("Subject:"))
with open({log!r}, "a") as log:
    log.write(subject + "\\n")
sys.stdout.write(raw.decode() + "\\nContent analysis details:   (0.4 points, 5.0 required)\\n\\n"
    " pts rule name              description\\n"
    "---- ---------------------- --------------------------------------------------\\n"
    " 0.4 HTML_MESSAGE           BODY: HTML included in message\\n")
"""


def test_the_preflight_checks_run_on_every_variant_a_send_will_mail(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    """Size, lint and the spam score on each variant, each finding naming it; a variant no
    reader gets (nobody is paused into it) is not checked."""
    ready_week(store, settings)
    emails = add_subscribers(store, 4)
    choose(store, emails[1], off=("Markets",))
    choose(store, emails[2], off=("AI", "Markets"))
    choose(store, emails[3], off=("AI",), paused_until=time.time() + 7 * DAY)  # not mailed now
    log = tmp_path / "scored.log"
    fake = tmp_path / "spamassassin"
    fake.write_text(FAKE_SPAMASSASSIN.format(python=sys.executable, log=str(log)))
    fake.chmod(0o755)
    report = run_checks(store, settings, WEEK, tools=Tools(str(fake), None))
    scored = log.read_text().splitlines()
    assert len(scored) == 3  # all sections; AI + Energy; Energy
    assert any("Chipmaker" in s for s in scored) and any("Post-training" in s for s in scored)
    assert any("Interconnection" in s for s in scored)
    sizes = {f.variant: f.message for f in report.findings if f.check == "size"}
    assert set(sizes) == {"all sections (AI, Energy, Markets)", "AI, Energy", "Energy"}
    assert len(set(sizes.values())) == 3  # each its own size
    spam = [f for f in report.findings if f.check == "spam"]
    assert len(spam) == 1 and spam[0].variant == "every variant"  # the same score everywhere
    assert "(variant: Energy)" in report.to_text()
    assert json.loads(report.to_json())["findings"][0]["variant"]


def test_a_send_is_refused_for_the_oversize_variant_it_would_mail(
    store: Store, settings: Settings, tmp_path: Path
) -> None:
    """The full dispatch is over Gmail's clipping limit (40 long Science signals): a send is
    refused while a reader would get it, and goes once every reader turned Science off."""
    load_sample(store, tmp_path, extra_signals=40)
    settings = settings.replace(max_signals=60)
    build_dispatch(store, settings, WEEK)
    approve(store, settings, WEEK)
    emails = add_subscribers(store, 2)
    choose(store, emails[1], off=("Science",))
    no_tools = Tools(None, None)
    with pytest.raises(PreflightError) as refused:
        preflight(store, settings, WEEK, tools=no_tools)
    (clipped,) = [f for f in refused.value.report.errors if f.check == "size"]
    assert clipped.variant.startswith("all sections (") and "Gmail clips" in clipped.message
    assert "(variant: all sections (" in refused.value.report.to_text()
    choose(store, emails[0], off=("Science",))
    report = preflight(store, settings, WEEK, tools=no_tools)
    assert report is not None and not [f for f in report.errors if f.check == "size"]


def test_check_reports_every_variant_or_the_one_asked_for(run, readers) -> None:
    every = run("check", "--week", str(WEEK), "--json", "--skip=spam", "--skip=render")
    report = json.loads(every.stdout)
    sizes = {f["variant"] for f in report["findings"] if f["check"] == "size"}
    assert sizes == {"all sections (AI, Energy, Markets)", "AI, Energy"}  # the paused: none
    one = run("check", "--week", str(WEEK), "--json", "--sections", "Energy", "--skip=render")
    report = json.loads(one.stdout)
    assert report["subject"].startswith("Interconnection queue reform")
    assert {f["variant"] for f in report["findings"]} == {""}


def test_deliveries_of_a_part_sent_dispatch_shows_what_is_not_claimed_yet(
    run, store: Store, readers
) -> None:
    part = run("send", "--week", str(WEEK), "--limit", "2")
    assert part.exit_code == 3, part.output
    out = run("deliveries", "--week", str(WEEK)).stdout
    assert "  all sections (AI, Energy, Markets): 2 sent" in out
    assert "  not claimed yet (each gets the variant of their sections then): 2 queued" in out
    assert "  skipped, paused until " in out and "partly sent" in out
