"""The ``ImageBackend`` port filled by Gemini image models through google-genai.

The SDK's own retry stays off: this adapter retries only what Gemini cannot have
processed (a refused connection, a 429 or 5xx that came back quickly), a bounded number
of times with capped exponential backoff and jitter, and only while the retry window
(the tool call's deadline) lasts. A request that timed out, or whose connection broke,
may still be processed and billed, so it is never sent again. Every other outcome
becomes a core ``BackendError`` whose message tells the person what to do and never
contains the API key.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import secrets
import time
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any, Final

import anyio
import httpx2
import pydantic
from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from image_core.domain import (
    BackendImage,
    BackendRequest,
    Grounding,
    GroundingSource,
    TokenUsage,
)
from image_core.errors import (
    BackendError,
    BackendMisconfigured,
    BackendRefused,
    BackendUnavailable,
    InvalidConfiguration,
)
from image_core.ports import ImageBackend, ImageSink
from image_server.adapters import inline_images

_log = logging.getLogger("image_server.gemini")

DEFAULT_BASE_URL: Final = "https://generativelanguage.googleapis.com/"
"""The Gemini API; a different base URL suits API gateways and tests."""

QUOTE_CHARS: Final = 300
"""How much of a text-only answer is quoted back to the person."""
NOTE_CHARS: Final = 200
"""How much of the text beside an image becomes the one-line note of the tool reply."""
MAX_SOURCES: Final = 10
"""How many of the web pages a grounded answer names are kept."""
GROUNDING_CHARS: Final = 200
"""How much of a search query or a page title is kept."""
MAX_URI_CHARS: Final = 2048
"""A source address longer than this is dropped, not kept."""

_PROMPT_BLOCKS: Final = {
    "SAFETY": "it tripped Gemini's safety filter",
    "PROHIBITED_CONTENT": "Gemini treats what it asks for as prohibited content",
    "BLOCKLIST": "it contains terms on Gemini's blocklist",
    "IMAGE_SAFETY": "a reference image tripped Gemini's safety filter",
    "JAILBREAK": "Gemini read it as an attempt to get around its rules",
    "MODEL_ARMOR": "Gemini's prompt screening flagged it",
}

_RECITATION: Final = (
    "Gemini withheld the image because it came too close to existing, possibly "
    "copyrighted material ({reason}). Describe an original design rather than a specific "
    "existing work, logo or character."
)
_FINISH_REFUSALS: Final = {
    "SAFETY": "Gemini's safety filter stopped the answer (SAFETY). Rephrase the prompt "
    "without violent, sexual or otherwise sensitive details and try again.",
    "PROHIBITED_CONTENT": "Gemini refused: the request falls under its prohibited-content "
    "policy (PROHIBITED_CONTENT). Change what the prompt asks for; rewording alone "
    "rarely helps.",
    "IMAGE_SAFETY": "Gemini made an image but withheld it because the image tripped its "
    "safety filter (IMAGE_SAFETY). Rephrase to make the scene less explicit, violent or "
    "sensitive and try again.",
    "IMAGE_PROHIBITED_CONTENT": "Gemini withheld the image as prohibited content "
    "(IMAGE_PROHIBITED_CONTENT); this often concerns real people, minors or protected "
    "characters. Change the subject of the prompt.",
    "IMAGE_RECITATION": _RECITATION.format(reason="IMAGE_RECITATION"),
    "RECITATION": _RECITATION.format(reason="RECITATION"),
    "IMAGE_OTHER": "Gemini declined to produce the image without saying why (IMAGE_OTHER). "
    "Rephrase or simplify the prompt and try again.",
    "NO_IMAGE": "Gemini finished without producing an image (NO_IMAGE). Ask for the "
    "picture explicitly, e.g. start with 'Generate an image of ...', and try again.",
    "BLOCKLIST": "Gemini stopped because the request contains blocked terms (BLOCKLIST). "
    "Remove them and try again.",
    "SPII": "Gemini stopped because the request involves sensitive personal information "
    "(SPII). Remove names, addresses or identifiers and try again.",
}

_SIGNATURES: Final = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
_RETRY_DELAY = re.compile(r"^(\d+(?:\.\d+)?)s$")


@dataclass(frozen=True)
class _Failure:
    """One failed attempt: what to tell the person if it is the last one."""

    kind: type[BackendError]
    headline: str
    advice: str
    retryable: bool = False
    retry_after: float | None = None

    def error(self, attempts: int) -> BackendError:
        tries = f"; gave up after {attempts} attempts" if attempts > 1 else ""
        return self.kind(f"{self.headline}{tries}. {self.advice}")


class _Collected:
    """An ``ImageSink`` that keeps a lifted image and passes it on as it arrives.

    Passing it on only saves time: if the receiver fails, the image is kept all the
    same (it is paid for) and the receiver gets no more.
    """

    def __init__(self, onward: ImageSink | None) -> None:
        self.pieces: list[bytes] = []
        self._onward = onward

    def write(self, chunk: bytes) -> None:
        self.pieces.append(chunk)
        if self._onward is not None:
            try:
                self._onward.write(chunk)
            except Exception:
                _log.exception("handing the image over early failed; it is kept whole")
                self._onward = None

    def start_over(self) -> None:
        self.pieces = []


class _Lifted:
    """The images lifted out of one call's answer; each goes to ``sink`` as it arrives.

    The image Gemini answers with comes last (thought drafts, when sent, come before
    it), so each new image makes the sink start over.
    """

    def __init__(self, sink: ImageSink | None) -> None:
        self._sink = sink
        self.images: list[_Collected] = []

    def start_answer(self) -> None:
        """A new attempt: what an earlier answer held is not this one's."""
        if self.images:
            self.open(len(self.images))  # makes the sink start over
        self.images = []

    def open(self, index: int) -> ImageSink:
        if index > 0 and self._sink is not None:
            try:
                self._sink.start_over()
            except Exception:
                _log.exception("restarting the early image work failed; it is skipped")
                self._sink = None
        collected = _Collected(self._sink)
        self.images.append(collected)
        return collected

    def image(self, data: bytes) -> bytes:
        """The lifted image ``data`` stands for, or ``data`` itself."""
        index = inline_images.lifted_index(data)
        if index is None or index >= len(self.images):
            return data
        return b"".join(self.images[index].pieces)


_LIFTED: Final[contextvars.ContextVar[_Lifted | None]] = contextvars.ContextVar(
    "image_server_gemini_lifted", default=None
)
"""Set around one ``generate`` call: where its answer's images go."""


class ThreadedTransport(httpx2.AsyncBaseTransport):
    """Each HTTP exchange runs on a blocking transport in a worker thread.

    The answer is the image as base64 inside JSON: 2 MB at 1K, 29 MB at 4K. Read on the
    event loop it arrives in 64 KiB steps, each a trip through the loop; a blocking read
    in a thread takes about half the time at 1K (measured against the fake Gemini) and
    leaves the loop free meanwhile. At most ``max_exchanges`` run at once, in threads of
    their own, so slow Gemini calls never hold the pool the rest of the server uses.

    During a ``generate`` call the images are lifted out of the answer as it arrives
    (``inline_images``): decoded from base64 piece by piece and passed on, so the image
    is being decoded while the rest still downloads, and the SDK parses a few hundred
    bytes of JSON instead of megabytes.
    """

    def __init__(self, max_exchanges: int = 32) -> None:
        self._blocking = httpx2.HTTPTransport()
        self._limiter = anyio.CapacityLimiter(max_exchanges)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        body = await request.aread()
        lifted = _LIFTED.get()
        status, headers, content = await anyio.to_thread.run_sync(
            self._exchange, request, body, lifted, limiter=self._limiter, abandon_on_cancel=True
        )
        return httpx2.Response(status, headers=headers, content=content, request=request)

    def _exchange(
        self, request: httpx2.Request, body: bytes, lifted: _Lifted | None
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        blocking = httpx2.Request(
            request.method,
            request.url,
            headers=request.headers,
            content=body,
            extensions=request.extensions,
        )
        response = self._blocking.handle_request(blocking)
        try:
            if lifted is None or response.status_code != 200:
                content = response.read()
            else:
                lifted.start_answer()
                lifter = inline_images.InlineImageLifter(lifted.open)
                kept = [lifter.feed(piece) for piece in response.iter_bytes()]
                kept.append(lifter.close())
                content = b"".join(kept)
        finally:
            response.close()
        # The body is already decoded: drop the headers that describe its wire form.
        headers = [
            (k, v)
            for k, v in response.headers.multi_items()
            if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")
        ]
        return response.status_code, headers, content

    async def aclose(self) -> None:
        """Close the pooled connections."""
        await anyio.to_thread.run_sync(self._blocking.close)


class GeminiImageBackend:
    """Generates one image per call with a Gemini image model.

    One SDK client lives as long as the backend, so connections are pooled across
    calls; close it with ``aclose`` (or ``async with``).
    """

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str | None = None,
        timeout_seconds: float = 180.0,
        max_attempts: int = 3,
        initial_backoff_seconds: float = 1.0,
        max_backoff_seconds: float = 10.0,
        fast_failure_seconds: float = 15.0,
        retry_window_seconds: float = 200.0,
        api_version: str | None = None,
    ) -> None:
        if not api_key.strip():
            raise InvalidConfiguration("GEMINI_API_KEY is empty: set it to a Gemini API key.")
        if timeout_seconds <= 0:
            raise InvalidConfiguration("The Gemini timeout must be a positive number of seconds.")
        if max_attempts < 1:
            raise InvalidConfiguration("Gemini max_attempts must be at least 1.")
        if min(initial_backoff_seconds, max_backoff_seconds, fast_failure_seconds) < 0:
            raise InvalidConfiguration("Gemini backoff and retry times must not be negative.")
        if retry_window_seconds < 0:
            raise InvalidConfiguration("The Gemini retry window must not be negative.")
        self._api_key = api_key.strip()
        self._timeout = timeout_seconds
        self._max_attempts = max_attempts
        self._initial_backoff = initial_backoff_seconds
        self._max_backoff = max_backoff_seconds
        self._fast_failure = fast_failure_seconds
        self._retry_window = retry_window_seconds
        self._random = secrets.SystemRandom()
        self._transport = ThreadedTransport()
        # Explicit vertexai, key and base URL keep GOOGLE_GENAI_USE_VERTEXAI,
        # GOOGLE_API_KEY and GOOGLE_GEMINI_BASE_URL from changing where requests go.
        self._client = genai.Client(
            vertexai=False,
            api_key=self._api_key,
            http_options=types.HttpOptions(
                base_url=base_url or DEFAULT_BASE_URL,
                api_version=api_version,
                timeout=max(1, round(timeout_seconds * 1000)),
                retry_options=types.HttpRetryOptions(attempts=1),
                httpx_async_client=httpx2.AsyncClient(
                    transport=self._transport, timeout=timeout_seconds
                ),
            ),
        )

    @property
    def name(self) -> str:
        """Recorded in each generation."""
        return "gemini"

    async def generate(self, request: BackendRequest) -> BackendImage:
        """Ask Gemini for one image, retrying passing failures a bounded number of times."""
        return await self._generate(request, None)

    async def generate_streaming(self, request: BackendRequest, sink: ImageSink) -> BackendImage:
        """As ``generate``; a PNG's bytes also go to ``sink`` while they arrive."""
        return await self._generate(request, sink)

    async def _generate(self, request: BackendRequest, sink: ImageSink | None) -> BackendImage:
        references = [
            types.Part.from_bytes(data=r.data, mime_type=r.mime_type) for r in request.references
        ]
        contents: list[types.PartUnion] = [request.prompt, *references]
        config = types.GenerateContentConfig(
            # TEXT too, so a refusal arrives as words we can quote instead of nothing.
            response_modalities=["TEXT", "IMAGE"],
            image_config=types.ImageConfig(
                aspect_ratio=request.aspect_ratio.value if request.aspect_ratio else None,
                image_size=request.image_size.value,
            ),
            thinking_config=_thinking(request.thinking_level),
            tools=[types.Tool(google_search=types.GoogleSearch())]
            if request.search_grounding
            else None,
        )
        lifted = _Lifted(sink)
        token = _LIFTED.set(lifted)
        try:
            response = await self._call(request.model_id, contents, config)
        finally:
            _LIFTED.reset(token)
        return self._image_from(response, lifted)

    async def aclose(self) -> None:
        """Close the SDK's connection pools."""
        await self._client.aio.aclose()
        self._client.close()
        await self._transport.aclose()

    async def __aenter__(self) -> GeminiImageBackend:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _call(
        self, model: str, contents: list[types.PartUnion], config: types.GenerateContentConfig
    ) -> types.GenerateContentResponse:
        window_ends = time.monotonic() + self._retry_window
        for attempt in range(1, self._max_attempts + 1):
            sent_at = time.monotonic()
            try:
                with anyio.fail_after(self._timeout):
                    return await self._client.aio.models.generate_content(
                        model=model, contents=contents, config=config
                    )
            except genai_errors.APIError as exc:
                failure = self._api_failure(exc, model)
                if time.monotonic() - sent_at > self._fast_failure:
                    failure = replace(failure, retryable=False)  # it may have done work
            except (TimeoutError, httpx2.TimeoutException):
                raise BackendUnavailable(
                    f"Gemini did not answer within {self._timeout:g} s. The request was not "
                    "sent again, because Gemini may still process (and bill) it. Large (4K) "
                    "or pro images take longest: try again, or pick a smaller size or the "
                    "flash model.",
                    may_be_billed=True,
                ) from None
            except httpx2.ConnectError:
                failure = _Failure(
                    BackendUnavailable,
                    "Could not connect to the Gemini API",
                    "Check the server's network connection and try again.",
                    retryable=True,
                )
            except httpx2.TransportError:
                # The request may have reached Gemini (and be billed): never resend it.
                raise BackendUnavailable(
                    "The connection to Gemini broke before an answer arrived. Try again.",
                    may_be_billed=True,
                ) from None
            except (
                json.JSONDecodeError,
                inline_images.UnreadableAnswer,
                pydantic.ValidationError,
                genai_errors.UnknownApiResponseError,
            ):
                raise BackendUnavailable(
                    "Gemini sent a response that could not be read (malformed or unexpected "
                    "JSON). This is usually passing: try again.",
                    may_be_billed=True,
                ) from None
            delay = self._backoff(attempt, failure.retry_after)
            out_of_window = time.monotonic() + delay > window_ends
            if not failure.retryable or attempt == self._max_attempts or out_of_window:
                raise failure.error(attempt) from None
            _log.info(
                "Gemini attempt %d/%d failed (%s); retrying in %.2f s",
                attempt,
                self._max_attempts,
                failure.headline,
                delay,
            )
            await anyio.sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        """Capped exponential backoff with jitter, honouring Gemini's RetryInfo up to the cap."""
        ceiling = min(self._max_backoff, self._initial_backoff * 2.0 ** (attempt - 1))
        delay = ceiling / 2 + self._random.uniform(0, ceiling / 2)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self._max_backoff))
        return delay

    def _api_failure(self, exc: genai_errors.APIError, model: str) -> _Failure:
        code = exc.code
        status = f"HTTP {code} {exc.status}" if exc.status else f"HTTP {code}"
        details = _details(exc)
        said = self._quote(exc.message or "", 200).rstrip(".")
        if code == 429:
            if any("PerDay" in str(v.get("quotaId", "")) for v in _violations(details)):
                return _Failure(
                    BackendUnavailable,
                    f"The Gemini API key's daily quota is used up ({status})",
                    "Try again tomorrow, or raise the quota or enable billing for the key's "
                    "Google Cloud project.",
                )
            return _Failure(
                BackendUnavailable,
                f"Gemini is rate limiting requests ({status})",
                "Try again in a minute.",
                retryable=True,
                retry_after=_retry_delay(details),
            )
        if code == 503:
            return _Failure(
                BackendUnavailable,
                f"Gemini is overloaded ({status})",
                "Try again in a few minutes; the flash model and smaller sizes are less affected.",
                retryable=True,
            )
        if code >= 500:
            return _Failure(
                BackendUnavailable,
                f"Gemini failed on its side ({status})",
                "Try again in a minute.",
                retryable=True,
            )
        if code == 404:
            _log.warning(
                "Gemini answered 404 for model id %r: it is unknown or retired; set its "
                "alias's IMG_MODEL_<ALIAS> (IMG_MODEL_FLASH, IMG_MODEL_PRO, IMG_MODEL_LITE) to "
                "the current image model id; `image-mcp check --online` lists what is gone",
                model,
            )
            return _Failure(
                BackendMisconfigured,
                f"Gemini does not know the model id {model!r}: it is misspelled or retired "
                f"({status})",
                "An administrator should set the model's IMG_MODEL_<ALIAS> variable (e.g. "
                "IMG_MODEL_FLASH) to the current Gemini image model id; `image-mcp check "
                "--online` shows which ids Gemini still offers.",
            )
        reasons = {str(d.get("reason", "")) for d in details}
        if code in (401, 403) or "API_KEY_INVALID" in reasons:
            return _Failure(
                BackendMisconfigured,
                f"Gemini rejected the API key ({status}: {said})",
                "Check GEMINI_API_KEY.",
            )
        if exc.status == "FAILED_PRECONDITION":
            return _Failure(
                BackendMisconfigured,
                f"Gemini refuses to serve this server ({status}: {said})",
                "The server's region or the key's project may not be allowed to use this "
                "model; an administrator should check the Gemini API setup.",
            )
        return _Failure(
            BackendError,
            f"Gemini rejected the request ({status}: {said})",
            "Check the prompt, the reference images, the aspect ratio and the size.",
        )

    def _image_from(self, response: types.GenerateContentResponse, lifted: _Lifted) -> BackendImage:
        usage = _token_usage(response.usage_metadata)
        try:
            return self._image_in(response, lifted, usage)
        except BackendError as exc:  # answered without an image: its tokens are still billed
            exc.token_usage = usage
            raise

    def _image_in(
        self, response: types.GenerateContentResponse, lifted: _Lifted, usage: TokenUsage | None
    ) -> BackendImage:
        feedback = response.prompt_feedback
        if feedback is not None and feedback.block_reason is not None:
            reason = _enum_name(feedback.block_reason)
            why = _PROMPT_BLOCKS.get(reason, "for a reason Gemini did not give")
            raise BackendRefused(
                f"Gemini blocked the prompt before generating anything ({reason}): {why}. "
                "Rephrase the prompt and try again."
            )
        if not response.candidates:
            raise BackendUnavailable(
                "Gemini answered with neither an image nor a reason. This is usually "
                "passing: try again."
            )
        candidate = response.candidates[0]
        content_parts = candidate.content.parts if candidate.content else None
        # Thought parts (Pro's drafts and reasoning) are not the answer.
        parts = [p for p in content_parts or [] if not p.thought]
        said = " ".join(p.text.strip() for p in parts if p.text and p.text.strip())
        for part in parts:
            blob = part.inline_data
            if blob is not None and blob.data:
                data = lifted.image(blob.data)
                return BackendImage(
                    data=data,
                    mime_type=_sniff_mime(data, blob.mime_type),
                    token_usage=usage,
                    text=self._quote(said, NOTE_CHARS) if said else None,
                    grounding=grounding_of(candidate.grounding_metadata),
                )
        reason = _enum_name(candidate.finish_reason)
        if reason in _FINISH_REFUSALS:
            raise BackendRefused(_FINISH_REFUSALS[reason])
        if said:
            raise BackendRefused(
                f'Gemini answered with text instead of an image: "{self._quote(said)}" '
                "Rephrase the prompt, asking plainly for an image, and try again."
            )
        raise BackendError(
            f"Gemini's answer held no image (finish reason {reason or 'none'}). Try again; "
            "if it keeps happening, rephrase the prompt."
        )

    def _quote(self, text: str, limit: int = QUOTE_CHARS) -> str:
        """Text from Gemini made safe to show: key redacted, whitespace folded, truncated."""
        return _fold(text.replace(self._api_key, "[redacted]"), limit)

    async def list_models(self, timeout_seconds: float = 30.0) -> frozenset[str]:
        """Every model id the key may use, from Gemini's models list (all pages).

        Raises ``BackendUnavailable`` (its message free of the key) when the list cannot
        be had: no connection, a refusal, an unreadable answer, or no answer in time.
        """
        ids: set[str] = set()
        try:
            with anyio.fail_after(timeout_seconds):
                pager = await self._client.aio.models.list(config={"page_size": 100})
                async for model in pager:
                    if model.name:
                        ids.add(model.name.removeprefix("models/"))
        except genai_errors.APIError as exc:
            status = f"HTTP {exc.code} {exc.status}" if exc.status else f"HTTP {exc.code}"
            said = self._quote(exc.message or "", 200)
            raise BackendUnavailable(f"Gemini's models list answered {status}: {said}") from None
        except (TimeoutError, httpx2.TimeoutException):
            msg = f"Gemini's models list did not answer within {timeout_seconds:g} s"
            raise BackendUnavailable(msg) from None
        except httpx2.HTTPError as exc:
            raise BackendUnavailable(
                f"Could not reach Gemini's models list ({type(exc).__name__})"
            ) from None
        except (
            json.JSONDecodeError,
            pydantic.ValidationError,
            genai_errors.UnknownApiResponseError,
        ):
            raise BackendUnavailable(
                "Gemini's models list sent an answer that could not be read"
            ) from None
        return frozenset(ids)


def _thinking(level: str | None) -> types.ThinkingConfig | None:
    """The SDK's thinking config for a level the catalog names (``high`` is ``HIGH``)."""
    if level is None:
        return None
    return types.ThinkingConfig(thinking_level=types.ThinkingLevel(level.upper()))


def grounding_of(metadata: types.GroundingMetadata | None) -> Grounding | None:
    """The search queries Gemini ran and the web pages it drew on, when it searched.

    Every query is kept (each is billed), cut to ``GROUNDING_CHARS``; of the pages, the
    first ``MAX_SOURCES``, their titles cut alike: a record stays small whatever comes.
    """
    if metadata is None:
        return None
    queries = tuple(_cut(q) for q in metadata.web_search_queries or [] if q.strip())
    sources = tuple(
        GroundingSource(uri=chunk.web.uri, title=_cut(chunk.web.title) if chunk.web.title else None)
        for chunk in metadata.grounding_chunks or []
        if chunk.web is not None and chunk.web.uri and len(chunk.web.uri) <= MAX_URI_CHARS
    )
    return Grounding(queries=queries, sources=sources[:MAX_SOURCES])


def _cut(text: str) -> str:
    return _fold(text, GROUNDING_CHARS)


def _fold(text: str, limit: int) -> str:
    """``text`` on one line, whitespace folded, cut to ``limit`` characters with an ellipsis."""
    folded = " ".join(text.split())
    return folded if len(folded) <= limit else folded[: limit - 1].rstrip() + "…"


def _enum_name(value: object) -> str:
    """The wire name of an SDK enum (or of an unknown value the SDK passed through)."""
    if value is None:
        return ""
    return str(getattr(value, "value", value))


def _details(exc: genai_errors.APIError) -> list[dict[str, Any]]:
    """The ``error.details`` list of a Google JSON error body, or nothing."""
    body = exc.details
    error = body.get("error", body) if isinstance(body, dict) else {}
    details = error.get("details") if isinstance(error, dict) else None
    return [d for d in details if isinstance(d, dict)] if isinstance(details, list) else []


def _violations(details: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = [d.get("violations") for d in details if d.get("@type", "").endswith("QuotaFailure")]
    return [v for vs in found if isinstance(vs, list) for v in vs if isinstance(v, dict)]


def _retry_delay(details: list[dict[str, Any]]) -> float | None:
    """Seconds from a ``RetryInfo`` detail such as ``{"retryDelay": "38s"}``."""
    for detail in details:
        match = _RETRY_DELAY.match(str(detail.get("retryDelay", "")))
        if match:
            return float(match[1])
    return None


def _sniff_mime(data: bytes, declared: str | None) -> str:
    """The real format from the bytes: Gemini may send JPEG while saying PNG."""
    for signature, mime in _SIGNATURES:
        if data.startswith(signature):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return declared or "application/octet-stream"


def _token_usage(usage: types.GenerateContentResponseUsageMetadata | None) -> TokenUsage | None:
    """The counts as Gemini reported them, with the breakdown by modality each price needs.

    ``prompt_token_count`` already includes the prompt's images (their share is
    ``image_input_tokens``); thinking and tool-use prompt tokens are counted apart from
    prompt and candidates, as the SDK documents ``total_token_count``.
    """
    if usage is None:
        return None
    output = _by_modality(usage.candidates_tokens_details)
    prompt = _by_modality(usage.prompt_tokens_details)
    return TokenUsage(
        prompt_tokens=usage.prompt_token_count,
        output_tokens=usage.candidates_token_count,
        thoughts_tokens=usage.thoughts_token_count,
        total_tokens=usage.total_token_count,
        image_output_tokens=output.get("IMAGE"),
        text_output_tokens=output.get("TEXT"),
        image_input_tokens=prompt.get("IMAGE"),
        tool_use_prompt_tokens=usage.tool_use_prompt_token_count,
    )


def _by_modality(details: list[types.ModalityTokenCount] | None) -> dict[str, int]:
    """Tokens per modality's wire name (``IMAGE``, ``TEXT``); empty without a breakdown.

    An unspecified modality is text, as the SDK documents; repeated entries add up.
    """
    counts: dict[str, int] = {}
    for entry in details or []:
        if entry.token_count is None:
            continue
        modality = _enum_name(entry.modality) or "TEXT"
        if modality == types.MediaModality.MODALITY_UNSPECIFIED.value:
            modality = "TEXT"
        counts[modality] = counts.get(modality, 0) + entry.token_count
    return counts


_backend: type[ImageBackend] = GeminiImageBackend
