"""The editor's view of a dispatch: the email as one sample reader will see it."""

from __future__ import annotations

import os
from pathlib import Path

from newsletter.compose import Composer
from newsletter.dispatch import load_dispatch
from newsletter.errors import DispatchError
from newsletter.models import Subscriber
from newsletter.render import frozen_rendering, render_dispatch
from newsletter.settings import Settings
from newsletter.store import Store
from newsletter.weeks import Week

SAMPLE_READER = Subscriber(id=0, email="reader@example.org", name="Sample Reader", status="active")


def preview_message(store: Store, settings: Settings, week: Week) -> tuple[str, str]:
    """HTML and text of the dispatch personalised for a sample reader."""
    dispatch = load_dispatch(store, settings, week)
    if dispatch is None:
        raise DispatchError(
            f"no dispatch for {week}: run `newsletter dispatch build --week {week}`"
        )
    rendered = frozen_rendering(dispatch) or render_dispatch(dispatch, settings)
    composer = Composer(rendered, settings, store.secret_key(settings.secret_key), str(week))
    message = composer.compose(SAMPLE_READER)
    return message.html, message.text


def write_preview(store: Store, settings: Settings, week: Week, path: Path) -> Path:
    html, _ = preview_message(store, settings, week)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    partial.write_text(html, encoding="utf-8")
    os.replace(partial, path)
    return path.resolve()
