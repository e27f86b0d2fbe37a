"""A small client for any OpenAI-compatible chat completions endpoint (OpenAI, Ollama,
llama.cpp's server, vLLM, LM Studio), over httpx.

POST {base}/chat/completions with `model`, `messages` and a `response_format`: a JSON schema
first (structured outputs). A server that refuses the schema with a 400 is asked again with
`{"type": "json_object"}`, and one that refuses that too with the instructions alone; the
client remembers what the server took, so later questions go straight to it. 429 and 5xx
answers and timeouts are retried with backoff, a Retry-After waited out (up to a cap);
401/403/404 and an unreachable server stop the whole run (LLMUnavailable).
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from newsletter import __version__
from newsletter.editorial.prompt import ANSWER_SCHEMA, SCHEMA_NAME
from newsletter.errors import DraftFailed, LLMUnavailable

MODES = ("json_schema", "json_object", "prompt")
MAX_ANSWER_BYTES = 1_000_000
_TEMPORARY = {408, 409, 429, 500, 502, 503, 504, 520, 522, 524, 529}
# words servers use when they refuse a response_format they do not know
_FORMAT_WORDS = ("response_format", "json_schema", "json_object", "schema", "structured")


@dataclass(frozen=True)
class Completion:
    """The parts of a chat completion a draft needs."""

    content: str | None
    refusal: str | None
    finish_reason: str | None
    mode: str
    model: str


class _Temporary(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class ChatClient:
    """Thread-safe: one client serves every worker of a `signals draft` run."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str = "",
        *,
        timeout: float = 120.0,
        attempts: int = 3,
        max_wait: float = 60.0,
        backoff: float = 1.0,
        concurrency: int = 4,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        headers = {"User-Agent": f"newsletter/{__version__} (signals draft)"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.max_wait = max_wait
        self.backoff = backoff
        self._sleep = sleep
        self._mode = MODES[0]
        self._fatal: LLMUnavailable | None = None  # once refused as a whole, ask no more
        self._lock = threading.Lock()
        self._http = httpx.Client(
            base_url=self.base_url + "/",
            headers=headers,
            timeout=httpx.Timeout(timeout, connect=min(10.0, timeout)),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            transport=transport,
        )

    def __repr__(self) -> str:  # never the key
        return f"ChatClient({self.base_url!r}, model={self.model!r}, mode={self._mode!r})"

    @property
    def mode(self) -> str:
        """How answers are asked for now: json_schema, json_object or prompt (instructions)."""
        return self._mode

    def body(self, messages: list[dict[str, str]], mode: str | None = None) -> dict[str, Any]:
        """The request body the chat completions API documents."""
        mode = mode or self._mode
        body: dict[str, Any] = {"model": self.model, "messages": messages}
        if mode == "json_schema":
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": SCHEMA_NAME, "schema": ANSWER_SCHEMA, "strict": True},
            }
        elif mode == "json_object":
            body["response_format"] = {"type": "json_object"}
        return body

    def complete(self, messages: list[dict[str, str]]) -> Completion:
        """One answer; DraftFailed when this question failed, LLMUnavailable when all will."""
        attempt = 0
        while True:
            if self._fatal is not None:
                raise self._fatal
            mode = self._mode
            attempt += 1
            try:
                return self._once(messages, mode)
            except LLMUnavailable as exc:
                self._fatal = exc
                raise
            except _Temporary as failure:
                if attempt >= self.attempts:
                    raise DraftFailed(
                        f"{failure.reason} (gave up after {attempt} attempts)"
                    ) from None
                self._sleep(self._delay(attempt, failure.retry_after))
            except _Refused:
                attempt -= 1  # asking in a form the server takes is not a retry
                self._downgrade(mode)

    def _once(self, messages: list[dict[str, str]], mode: str) -> Completion:
        try:
            response = self._http.post("chat/completions", json=self.body(messages, mode))
        except httpx.TimeoutException:
            raise _Temporary(
                f"no answer within {self.timeout:g} s (NEWSLETTER_LLM_TIMEOUT)"
            ) from None
        except httpx.ConnectError as exc:
            raise LLMUnavailable(
                f"cannot reach {self.base_url} ({exc}): is the server running? (NEWSLETTER_LLM_URL)"
            ) from None
        except httpx.TransportError as exc:
            raise _Temporary(f"connection failed ({exc.__class__.__name__}: {exc})") from None
        if len(response.content) > MAX_ANSWER_BYTES:
            raise DraftFailed(f"answer too large ({len(response.content)} bytes)")
        status = response.status_code
        if status == 200:
            return self._completion(response, mode)
        detail = _error_message(response)
        if status in (400, 422) and mode != MODES[-1] and _about_format(detail):
            raise _Refused(detail)
        if status in (401, 403):
            raise LLMUnavailable(
                f"{self.base_url}: HTTP {status}, credentials refused ({detail});"
                " check NEWSLETTER_LLM_API_KEY (or OPENAI_API_KEY)"
            )
        if status == 404:
            raise LLMUnavailable(
                f"{self.base_url}/chat/completions: HTTP 404 ({detail});"
                " check NEWSLETTER_LLM_URL and NEWSLETTER_LLM_MODEL"
            )
        if status in _TEMPORARY:
            raise _Temporary(f"HTTP {status}: {detail}", retry_after(response))
        raise DraftFailed(f"HTTP {status}: {detail}")

    def _completion(self, response: httpx.Response, mode: str) -> Completion:
        try:
            data = response.json()
            choice = data["choices"][0]
            message = choice["message"]
        except (ValueError, KeyError, IndexError, TypeError):
            raise DraftFailed(
                f"not a chat completion: {' '.join(response.text.split())[:120]!r}"
            ) from None
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}]
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        return Completion(
            content=content if isinstance(content, str) else None,
            refusal=message.get("refusal") if isinstance(message, dict) else None,
            finish_reason=choice.get("finish_reason"),
            mode=mode,
            model=str(data.get("model") or self.model),
        )

    def _downgrade(self, refused: str) -> None:
        with self._lock:
            if self._mode == refused:  # another worker may have stepped down already
                self._mode = MODES[MODES.index(refused) + 1]

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_wait)
        ceiling = min(self.max_wait, self.backoff * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ChatClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Refused(Exception):
    """The server does not take this response_format."""


def _about_format(detail: str) -> bool:
    lowered = detail.lower()
    return any(word in lowered for word in _FORMAT_WORDS)


def _error_message(response: httpx.Response) -> str:
    """The error text of the documented shapes: OpenAI's and Ollama's {"error": {"message"}},
    llama.cpp's {"error": {"code", "message", "type"}}, or {"error": "..."} (LM Studio)."""
    try:
        data = response.json()
    except (ValueError, json.JSONDecodeError):
        return " ".join(response.text.split())[:200] or response.reason_phrase
    error = data.get("error") if isinstance(data, dict) else None
    if isinstance(error, dict):
        return str(error.get("message") or error)[:300]
    if error:
        return str(error)[:300]
    return str(data)[:200]


def retry_after(response: httpx.Response, now: float | None = None) -> float | None:
    """Seconds to wait from Retry-After (seconds or an HTTP date)."""
    value = (response.headers.get("Retry-After") or "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))
