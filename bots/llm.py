"""Grounded answers from an OpenAI-compatible chat model, streamed as they are written.

``LlmClient.compose`` shows the model only the passages retrieval found, asks it to answer from
them and cite them as ``[1]``, ``[2]``…, and offers it a ``handoff_to_human`` tool for when they
do not answer. It returns an ``LlmAnswer`` (text without the markers, the cited entry ids) or an
``LlmHandoff`` (the model's reason), or raises ``LlmError``: the caller falls back to retrieval.

``timeout`` bounds the whole call, retries included: the request runs in a helper thread and
``compose`` stops waiting at the deadline, however slowly the server trickles bytes.
"""

from __future__ import annotations

import json
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import openai

from bots import Turn
from bots.prompts import HANDOFF_TOOL, TOOLS, system_prompt

HISTORY_TURNS = 8  # earlier turns shown to the model, besides the question
TURN_CHARS = 2000  # longer turns are cut: a pasted log must not crowd out the passages
FIRST_BACKOFF = 0.25  # seconds before the first retry; doubles after each

ErrorKind = Literal["timeout", "rate_limited", "server_error", "connection", "refused", "garbage"]
_ROLES = {"visitor": "user", "bot": "assistant", "agent": "assistant"}


@dataclass(frozen=True)
class Passage:
    """A retrieved knowledge-base entry, as the model sees it."""

    entry_id: int
    title: str
    text: str


@dataclass(frozen=True)
class LlmAnswer:
    text: str
    cited_entry_ids: tuple[int, ...]  # in order of first citation


@dataclass(frozen=True)
class LlmHandoff:
    reason: str


LlmResult = LlmAnswer | LlmHandoff


class LlmError(Exception):
    """No usable reply. ``permanent`` when retrying cannot help (bad key, unknown model)."""

    def __init__(self, message: str, *, kind: ErrorKind, permanent: bool = False) -> None:
        super().__init__(message)
        self.kind = kind
        self.permanent = permanent


class LlmClient:
    """One OpenAI-compatible endpoint and model; thread-safe, so one instance can serve all."""

    def __init__(
        self,
        *,
        base_url: str | None,
        api_key: str,
        model: str,
        timeout: float,
        max_retries: int,
        stream: bool = True,
    ) -> None:
        self.model = model
        self.timeout = timeout
        self.max_retries = max_retries
        self.stream = stream
        # Imported here: the client costs ~0.8 s and tens of MiB, and a web process that
        # never calls a model should not pay for it.
        import openai

        # Retries are ours (below), so that they fit in the deadline.
        self._openai = openai.OpenAI(
            base_url=base_url or None,
            # Local servers often need no key, but the client insists on one.
            api_key=api_key or "unused",
            timeout=timeout,
            max_retries=0,
        )

    def compose(
        self,
        *,
        question: str,
        history: Sequence[Turn],
        passages: Sequence[Passage],
        on_delta: Callable[[str], None] | None = None,
    ) -> LlmResult:
        """Answer ``question`` from ``passages``, calling ``on_delta`` with each new piece of text.

        ``on_delta`` runs on the caller's thread and never sees citation markers. The pieces
        add up to the answer's text, but the model may still end up handing off instead.
        """
        messages = _messages(question, history, passages)
        deadline = time.monotonic() + self.timeout
        events: queue.Queue[tuple[str, Any]] = queue.Queue()
        cancelled = threading.Event()
        worker = threading.Thread(
            target=self._run, args=(messages, deadline, events, cancelled), daemon=True
        )
        worker.start()
        markers = _MarkerFilter()
        try:
            while True:
                try:
                    kind, value = events.get(timeout=max(deadline - time.monotonic(), 0))
                except queue.Empty:
                    raise LlmError(f"no reply within {self.timeout:g} s", kind="timeout") from None
                if kind == "delta":
                    piece = markers.feed(value)
                    if piece and on_delta is not None:
                        on_delta(piece)
                elif kind == "error":
                    raise value
                else:
                    return _result(value, passages)
        finally:
            cancelled.set()

    # --- The helper thread ------------------------------------------------------------------

    def _run(
        self,
        messages: list[dict[str, Any]],
        deadline: float,
        events: queue.Queue[tuple[str, Any]],
        cancelled: threading.Event,
    ) -> None:
        try:
            events.put(("done", self._attempts(messages, deadline, events, cancelled)))
        except LlmError as error:
            events.put(("error", error))
        except Exception as error:  # a surprise must still reach the caller, not kill a thread
            events.put(("error", LlmError(f"unexpected: {error!r}", kind="garbage")))

    def _attempts(
        self,
        messages: list[dict[str, Any]],
        deadline: float,
        events: queue.Queue[tuple[str, Any]],
        cancelled: threading.Event,
    ) -> _Reply:
        streamed = threading.Event()

        def emit(text: str) -> None:
            streamed.set()
            events.put(("delta", text))

        attempt = 0
        while True:
            try:
                return self._request(messages, deadline, emit, cancelled)
            except LlmError as error:
                # Text already on the visitor's screen must not be written twice.
                if error.permanent or streamed.is_set() or attempt >= self.max_retries:
                    raise
                delay = error.retry_after if isinstance(error, _Retryable) else None
                delay = FIRST_BACKOFF * 2**attempt if delay is None else delay
                if time.monotonic() + delay >= deadline or cancelled.wait(delay):
                    raise
                attempt += 1

    def _request(
        self,
        messages: list[dict[str, Any]],
        deadline: float,
        emit: Callable[[str], None],
        cancelled: threading.Event,
    ) -> _Reply:
        import openai  # loaded by __init__ already

        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LlmError("out of time before the request", kind="timeout")
        try:
            response = self._openai.chat.completions.create(
                model=self.model,
                messages=messages,  # type: ignore[arg-type]
                tools=TOOLS,  # type: ignore[arg-type]
                tool_choice="auto",
                stream=self.stream,  # type: ignore[call-overload]
                timeout=remaining,
            )
            if not self.stream:
                return _reply_from_completion(response, emit)
            with response:
                return _reply_from_chunks(iter(response), emit, cancelled)
        except openai.APIStatusError as error:
            raise _status_error(error) from error
        except openai.APITimeoutError as error:
            raise LlmError("the server did not answer in time", kind="timeout") from error
        except openai.APIConnectionError as error:
            raise _Retryable(f"cannot reach the server: {error}", kind="connection") from error
        except (openai.APIResponseValidationError, openai.APIError) as error:
            raise _Retryable(f"unusable response: {error}", kind="garbage") from error
        except (ValueError, TypeError, AttributeError, KeyError, IndexError) as error:
            raise _Retryable(f"unusable response: {error!r}", kind="garbage") from error


class _Retryable(LlmError):
    """A failure worth another try, after ``retry_after`` seconds when the server said so."""

    def __init__(self, message: str, *, kind: ErrorKind, retry_after: float | None = None) -> None:
        super().__init__(message, kind=kind, permanent=False)
        self.retry_after = retry_after


def _status_error(error: openai.APIStatusError) -> LlmError:
    status = error.status_code
    if status == 429:
        return _Retryable(
            "rate limited", kind="rate_limited", retry_after=_retry_after(error.response)
        )
    if status >= 500 or status in (408, 409):
        return _Retryable(f"server error {status}", kind="server_error")
    # 400, 401, 403, 404, 422: a bad key, an unknown model, a request the server refuses.
    return LlmError(f"refused with {status}: {error.message}", kind="refused", permanent=True)


def _retry_after(response: Any) -> float | None:
    try:
        return max(float(response.headers.get("retry-after", "")), 0.0)
    except (TypeError, ValueError):
        return None


# --- Reading replies -----------------------------------------------------------------------


@dataclass
class _Reply:
    text: str = ""
    handoff_reason: str | None = None


def _reply_from_chunks(
    chunks: Iterator[Any], emit: Callable[[str], None], cancelled: threading.Event
) -> _Reply:
    reply = _Reply()
    calls: dict[int, dict[str, str]] = {}  # tool calls arrive in pieces, keyed by index
    for chunk in chunks:
        if cancelled.is_set():
            break  # the caller gave up; closing the response ends the request
        for choice in chunk.choices or ():
            delta = choice.delta
            if delta is None:
                continue
            if delta.content:
                reply.text += delta.content
                emit(delta.content)
            for call in delta.tool_calls or ():
                parts = calls.setdefault(call.index or 0, {"name": "", "arguments": ""})
                if call.function is not None:
                    parts["name"] += call.function.name or ""
                    parts["arguments"] += call.function.arguments or ""
    return _finish(reply, list(calls.values()))


def _reply_from_completion(completion: Any, emit: Callable[[str], None]) -> _Reply:
    message = completion.choices[0].message
    reply = _Reply(text=message.content or "")
    if reply.text:
        emit(reply.text)
    calls = [
        {"name": call.function.name or "", "arguments": call.function.arguments or ""}
        for call in message.tool_calls or ()
        if getattr(call, "function", None) is not None
    ]
    return _finish(reply, calls)


def _finish(reply: _Reply, calls: list[dict[str, str]]) -> _Reply:
    for call in calls:
        if call["name"] != HANDOFF_TOOL:
            raise _Retryable(f"unknown tool {call['name']!r}", kind="garbage")
        reply.handoff_reason = _reason(call["arguments"])
    if reply.handoff_reason is None and not reply.text.strip():
        raise _Retryable("neither text nor a tool call", kind="garbage")
    return reply


def _reason(arguments: str) -> str:
    try:
        reason = json.loads(arguments or "{}").get("reason", "")
    except (ValueError, AttributeError):
        reason = ""
    return str(reason).strip()[:500]


def _result(reply: _Reply, passages: Sequence[Passage]) -> LlmResult:
    # A model that wrote some text and then asked for a person meant the hand-off.
    if reply.handoff_reason is not None:
        return LlmHandoff(reason=reply.handoff_reason)
    cited: list[int] = []
    for group in _MARKER.findall(reply.text):
        for number in re.findall(r"\d+", group):
            position = int(number) - 1
            if 0 <= position < len(passages) and passages[position].entry_id not in cited:
                cited.append(passages[position].entry_id)
    return LlmAnswer(text=_MARKER.sub("", reply.text).strip(), cited_entry_ids=tuple(cited))


# --- Citation markers ----------------------------------------------------------------------

# "[1]", "[1, 3]" and the space before them: "within 2 days [1]." reads "within 2 days.".
_MARKER = re.compile(r"\s*\[(\d{1,2}(?:\s*,\s*\d{1,2})*)\]")
# The end of a text that may still become a marker with the next piece: spaces, "[", "[1, ".
_MAYBE_MARKER = re.compile(r"\s*(?:\[[\d,\s]{0,12})?\Z")


class _MarkerFilter:
    """Drops citation markers from streamed text, though a marker may arrive in pieces."""

    def __init__(self) -> None:
        self._held = ""

    def feed(self, piece: str) -> str:
        text = _MARKER.sub("", self._held + piece)
        match = _MAYBE_MARKER.search(text)
        cut = match.start() if match else len(text)
        self._held = text[cut:]
        return text[:cut]


def _messages(
    question: str, history: Sequence[Turn], passages: Sequence[Passage]
) -> list[dict[str, Any]]:
    turns = list(history)
    if turns and turns[-1].role == "visitor" and turns[-1].body == question:
        turns.pop()  # the question comes last, below
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": system_prompt([(p.title, p.text) for p in passages])}
    ]
    for turn in turns[-HISTORY_TURNS:]:
        if turn.role in _ROLES:
            messages.append({"role": _ROLES[turn.role], "content": turn.body[:TURN_CHARS]})
    messages.append({"role": "user", "content": question[:TURN_CHARS]})
    return messages
