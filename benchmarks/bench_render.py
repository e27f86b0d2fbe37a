"""Rendering and personalising the dispatch: compile once, then one message per reader.

A 12-signal dispatch with the seed pages' fields at their usual lengths. The compile (Jinja2 ->
MJML -> HTML, plus the text part) runs once per dispatch; each reader's complete message (all
headers and both quoted-printable parts, as bytes) is then filled from the prebuilt template.
The naive ways run in the same process for comparison: the email package per message, and
compiling the MJML per reader.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

import mjml

from newsletter.delivery.compose import Composer
from newsletter.delivery.message import POLICY, build_mime
from newsletter.dispatch.render import SLOTS, make_environment, render_dispatch
from newsletter.dispatch.select import group_sections
from newsletter.models import Dispatch, Signal, Subscriber
from newsletter.settings import load_settings

title = "Render and personalise the dispatch"

READERS = 100_000
NAIVE_READERS = 300
SUMMARY = (
    "The prevailing paradigm for training LLMs has evolved to rely on a massive post-training "
    "phase consisting of SFT and RL. In this position paper, we argue that this methodology "
    "effectively marks a reversion to the pre-train then fine-tune approach of the BERT era, "
    "explicitly tailoring models to the desired behaviors and specific benchmarks on which they "
    "are evaluated. We begin with a historical overview of LLMs, describing the different phases."
)
WHY = (
    "A strategic reader should care because this suggests development might be converging on a "
    "well-understood, albeit computationally intensive, paradigm, impacting investment."
)


def _dispatch(settings_sections: tuple[str, ...]) -> Dispatch:
    categories = ("AI", "Markets", "Energy", "Policy")
    signals = [
        Signal(
            id=i,
            title=f"Post-training is (Massive) Supervised Learning, part {i}",
            url=f"https://arxiv.org/abs/2606.{7500 + i}",
            published=datetime(2026, 6, 9, 4, tzinfo=UTC),
            source_label="arXiv cs.LG",
            summary_html=f"<p>{SUMMARY}</p>",
            summary_text=SUMMARY,
            category=categories[i % 4],
            signal_score=90 - i,
            horizon="medium term",
            why_now=WHY,
            why_important=WHY,
            what_changes=WHY,
            winners=("Companies with large supervised datasets", "GPU manufacturers"),
            losers=("Companies lacking extensive labelled data resources",),
            effects_direct=WHY,
            effects_second=WHY,
            effects_third=WHY,
            editorial_confidence=90,
            structural_impact=60,
        )
        for i in range(12)
    ]
    return Dispatch(
        id=1,
        week="2026-W24",
        issue_number=12,
        status="draft",
        subject="Post-training is (Massive) Supervised Learning + 11 more",
        preheader="Also: three more signals",
        note="A **busy** week.",
        sections=tuple(group_sections(signals, settings_sections)),
    )


def _median_ms(job: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        job()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def run() -> str:
    settings = load_settings({"NEWSLETTER_SECRET_KEY": "bench-secret-key-0123456789"}, None)
    dispatch = _dispatch(settings.sections)
    env = make_environment()
    render_dispatch(dispatch, settings, env)  # warm the template cache

    context = {
        "dispatch": dispatch,
        "settings": settings,
        "view_url": "https://example.org/archive/2026-W24/",
        "subscribe_url": "https://example.org/",
        "slot": {k: f"@@x-{k}@@" for k in SLOTS},
    }
    template = env.get_template("email/dispatch.mjml.j2")
    source = template.render(context)
    jinja_ms = _median_ms(lambda: template.render(context), 50)
    mjml_ms = _median_ms(lambda: mjml.mjml2html(source, disable_comments=True), 50)
    render_ms = _median_ms(lambda: render_dispatch(dispatch, settings, env), 50)
    rendered = render_dispatch(dispatch, settings, env)

    composer = Composer(rendered, settings, "bench-secret", "2026-W24")
    readers = [
        Subscriber(i, f"reader{i}@example.org", "Zoë Reader" if i % 5 == 0 else f"Reader {i}", "")
        for i in range(1, READERS + 1)
    ]
    composer.compose(readers[0]).as_bytes()  # the byte template is built once, here
    started = time.perf_counter()
    total_bytes = 0
    for reader in readers:
        total_bytes += len(composer.compose(reader).as_bytes())
    fast_s = time.perf_counter() - started
    fast_us = fast_s / READERS * 1e6

    messages = [composer.compose(r) for r in readers[:NAIVE_READERS]]
    started = time.perf_counter()
    for message in messages:
        build_mime(message).as_bytes(policy=POLICY)
    naive_ms = (time.perf_counter() - started) / NAIVE_READERS * 1000

    html_kb = len(rendered.compiled_html.encode()) / 1024
    message_kb = total_bytes / READERS / 1024
    naive_total_s = naive_ms / 1000 * READERS
    compile_per_reader_s = render_ms / 1000 * READERS
    return f"""## {title}

12 signals with every field of the seed pages; {READERS:,} readers (every fifth with a
non-ASCII name, RFC 2047 in `To:`). Compiled HTML {html_kb:.0f} KB (Gmail clips at ~102 KB);
one complete message {message_kb:.0f} KB.

| step | measured | target |
| --- | --- | --- |
| Jinja2 render of the MJML (median) | {jinja_ms:.2f} ms | |
| mjml-python compile (median) | {mjml_ms:.2f} ms | < 10 ms |
| whole dispatch render: Jinja2 + MJML + text part + slot split (median) | {render_ms:.2f} ms \
| < 10 ms |
| **complete message as bytes, per reader** (compose + `as_bytes()`, mean of {READERS:,}) \
| **{fast_us:.1f} µs** | < 100 µs |
| naive: email package build + `as_bytes()` per reader (mean of {NAIVE_READERS}) \
| {naive_ms:.2f} ms | ~5 ms |

Ratio: the prebuilt template is {naive_ms * 1000 / fast_us:.0f}× faster than the email
package. For {READERS:,} readers: {fast_s:.1f} s with the template, {naive_total_s:.0f} s with
the email package, {compile_per_reader_s:.0f} s if the MJML were compiled per reader.
"""


if __name__ == "__main__":
    print(run())
