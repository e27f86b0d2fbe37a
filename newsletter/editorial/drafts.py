"""Machine drafts of the editorial read, and the editor's say over them.

`draft_signals` asks the model about each signal on worker threads (they only wait on the
network) and stores each answer as it lands, on the calling thread, one transaction a draft:
a bad answer is reported with its reason and nothing of it is written; the other signals are
still drafted. A draft lives apart from its signal until the editor accepts it (or the
operator set NEWSLETTER_DRAFT_AUTO_ACCEPT): only then are its fields copied into the signal,
through the same path as an annotation file, so nothing unaccepted can reach a reader.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field, replace
from typing import Any

from newsletter.editorial.answer import as_signal_fields, read_answer
from newsletter.editorial.client import ChatClient
from newsletter.editorial.prompt import DRAFT_FIELDS, Prompt
from newsletter.errors import DraftFailed, EditorialError, LLMUnavailable
from newsletter.models import LIST_FIELDS, Signal
from newsletter.settings import Settings
from newsletter.signals.annotations import Record, apply_records, to_markdown
from newsletter.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What became of one signal: a draft (maybe accepted at once), or the reason it failed."""

    signal_id: int
    title: str
    draft_id: int | None = None
    error: str | None = None
    accepted: bool = False


@dataclass
class DraftReport:
    outcomes: list[Outcome] = field(default_factory=list)
    fatal: str | None = None  # the run stopped: credentials, model or server
    not_asked: int = 0  # left when the run stopped
    mode: str = ""

    @property
    def drafted(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.draft_id is not None]

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.error is not None]


def make_client(settings: Settings) -> ChatClient:
    """The configured client; one line naming the setting when one is missing."""
    if not settings.llm_url:
        raise EditorialError(
            "NEWSLETTER_LLM_URL: required to draft (an OpenAI-compatible base URL, e.g."
            " https://api.openai.com/v1 or http://localhost:11434/v1 for Ollama)"
        )
    if not settings.llm_model:
        raise EditorialError("NEWSLETTER_LLM_MODEL: required to draft (the model to ask)")
    return ChatClient(
        settings.llm_url,
        settings.llm_model,
        settings.llm_key,
        timeout=settings.llm_timeout,
        attempts=settings.llm_retries,
        max_wait=settings.llm_max_wait,
        concurrency=settings.llm_concurrency,
    )


def candidates(
    store: Store,
    *,
    start: Any = None,
    end: Any = None,
    source: str | None = None,
    redraft: bool = False,
) -> list[Signal]:
    """Unannotated signals (newest first) without a draft waiting or rejected."""
    if source is not None and store.sources.get(source) is None:
        raise EditorialError(f"no source named {source!r} (see `newsletter sources list`)")
    found = store.signals.list(unannotated=True, start=start, end=end, source=source)
    if redraft:
        return found
    skip = store.drafts.drafted_ids()
    return [s for s in found if s.id not in skip]


def _ask(client: ChatClient, prompt: Prompt, signal: Signal) -> tuple[dict[str, Any], str, str]:
    completion = client.complete(prompt.messages(signal))
    if completion.refusal:
        raise DraftFailed(f"the model refused: {' '.join(completion.refusal.split())[:200]}")
    if completion.finish_reason == "length":
        raise DraftFailed("answer cut off at the model's length limit (finish_reason: length)")
    return read_answer(completion.content, signal), completion.mode, completion.model


def draft_signals(
    store: Store,
    signals: list[Signal],
    client: ChatClient,
    prompt: Prompt,
    *,
    concurrency: int = 4,
    auto_accept: bool = False,
    progress: Callable[[Outcome], None] | None = None,
) -> DraftReport:
    """Draft each signal; each answer is stored as soon as it lands (a killed run keeps them)."""
    report = DraftReport()
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        futures: dict[Future[tuple[dict[str, Any], str, str]], Signal] = {
            pool.submit(_ask, client, prompt, signal): signal for signal in signals
        }
        for future in as_completed(futures):
            signal = futures[future]
            try:
                fields, mode, model = future.result()
            except CancelledError:
                report.not_asked += 1
                continue
            except LLMUnavailable as exc:
                if report.fatal is None:
                    report.fatal = str(exc)
                    for pending in futures:
                        pending.cancel()
                report.not_asked += 1
                continue
            except DraftFailed as exc:
                outcome = Outcome(signal.id, signal.title, error=str(exc))
            except EditorialError as exc:  # the prompt template broke: same for every signal
                outcome = Outcome(signal.id, signal.title, error=str(exc))
            else:
                outcome = _store(store, signal, fields, prompt, mode, model, auto_accept)
                report.mode = mode
            if outcome.error:
                log.debug("draft of signal %s failed: %s", signal.id, outcome.error)
            report.outcomes.append(outcome)
            if progress is not None:
                progress(outcome)
    report.outcomes.sort(key=lambda o: o.signal_id)
    return report


def _store(
    store: Store,
    signal: Signal,
    fields: dict[str, Any],
    prompt: Prompt,
    mode: str,
    model: str,
    auto_accept: bool,
) -> Outcome:
    with store.transaction():
        draft_id = store.drafts.add(
            signal.id,
            fields,
            model=model,
            prompt_version=prompt.version,
            prompt_hash=prompt.digest,
            response_format=mode,
        )
        if auto_accept:
            _accept_one(store, signal.id, store.drafts.get(draft_id), "auto")  # type: ignore[arg-type]
    return Outcome(signal.id, signal.title, draft_id=draft_id, accepted=auto_accept)


def _empty(value: Any) -> bool:
    return value in (None, "", "[]")


def _accept_one(store: Store, signal_id: int, draft: dict[str, Any], by: str) -> list[str]:
    """Copy the draft's fields into the signal where the signal has none; return the fields the
    editor had already written (they are kept)."""
    row = store.signals.row(signal_id) or {}
    fill = {k: v for k, v in draft["fields"].items() if k in DRAFT_FIELDS and _empty(row.get(k))}
    kept = sorted(set(draft["fields"]) - set(fill))
    if fill:
        apply_records(store, [Record(f"draft {draft['id']}", fill)], target=signal_id)
    store.drafts.decide(draft["id"], "accepted", by)
    store.drafts.link(signal_id, draft["id"])
    return kept


def _pending(store: Store, signal_ids: Iterable[int]) -> list[tuple[int, dict[str, Any]]]:
    ids = list(dict.fromkeys(signal_ids))
    missing = [i for i in ids if store.signals.row(i) is None]
    if missing:
        raise EditorialError(f"no signal with id {', '.join(map(str, missing))}")
    drafts = store.drafts.pending_for(ids)
    without = [i for i in ids if i not in drafts]
    if without:
        raise EditorialError(
            f"no draft waiting for signal {', '.join(map(str, without))}"
            " (see `newsletter signals list --drafts`)"
        )
    return [(i, drafts[i]) for i in ids]


def accept(store: Store, signal_ids: Iterable[int], *, by: str = "editor") -> dict[int, list[str]]:
    """Accept each signal's waiting draft, all or none; returns the fields kept per signal."""
    chosen = _pending(store, signal_ids)
    with store.transaction():
        kept = {signal_id: _accept_one(store, signal_id, draft, by) for signal_id, draft in chosen}
        store.events.log("drafts.accepted", "signal", None, signals=[i for i, _ in chosen], by=by)
    return kept


def reject(store: Store, signal_ids: Iterable[int]) -> list[int]:
    """Reject each signal's waiting draft, all or none; the signal is left as it was."""
    chosen = _pending(store, signal_ids)
    with store.transaction():
        for _, draft in chosen:
            store.drafts.decide(draft["id"], "rejected", "editor")
        store.events.log("drafts.rejected", "signal", None, signals=[i for i, _ in chosen])
    return [i for i, _ in chosen]


def overlay(signal: Signal, draft: dict[str, Any]) -> Signal:
    """The signal as it would read with the draft accepted (the editor's preview only)."""
    values = as_signal_fields(draft["fields"])
    fill = {
        k: v
        for k, v in values.items()
        if k in DRAFT_FIELDS and getattr(signal, k) in (None, "", ())
    }
    return replace(signal, **fill)


def draft_mark(draft: dict[str, Any], signal_id: int) -> str:
    """The line a card with an unaccepted draft carries in the editor's preview."""
    return (
        f"DRAFT by {draft['model']}, not accepted: readers do not see this read."
        f" Accept it with `newsletter signals accept {signal_id}`."
    )


def edit_form(row: dict[str, Any], draft: dict[str, Any] | None) -> tuple[str, list[str]]:
    """The `signals edit` form: the signal's fields, with a waiting draft's fields filled in
    where the signal has none, marked as a draft in a comment. Returns the drafted fields."""
    if draft is None:
        return to_markdown(row), []
    filled = dict(row)
    drafted = []
    for name, value in draft["fields"].items():
        if name in DRAFT_FIELDS and _empty(row.get(name)):
            filled[name] = _as_row_value(name, value)
            drafted.append(name)
    form = to_markdown(filled)
    if not drafted:
        return form, []
    note = (
        f"# DRAFT by {draft['model']} ({draft['created_at']}, prompt {draft['prompt_version']}):"
        "\n# these fields are machine-drafted and not yet accepted:"
        f"\n#   {', '.join(drafted)}"
        "\n# Review them; saving this form accepts the draft (delete a field to leave it empty)."
    )
    return form.replace("---\n", f"---\n{note}\n", 1), drafted


def _as_row_value(name: str, value: Any) -> Any:
    return json.dumps(value, ensure_ascii=False) if name in LIST_FIELDS else value


def accept_edited(store: Store, signal_id: int) -> None:
    """The editor saved the form that showed the waiting draft: it is accepted as edited."""
    draft = store.drafts.pending(signal_id)
    if draft is None:
        return
    with store.transaction():
        store.drafts.decide(draft["id"], "accepted", "edit")
        store.drafts.link(signal_id, draft["id"])
