"""A fake Gemini API on loopback HTTP that speaks the real ``generateContent`` wire format.

Tests point the real google-genai client at it (``HttpOptions(base_url=fake.base_url)``)
so the adapter is exercised through the real SDK, JSON shapes and HTTP stack, with
scripted faults instead of mocks. Standard library plus Pillow only. Images are
photo-like at the sizes Gemini returns (tests/support/photos.py), never flat colours.

    with FakeGemini(api_key="k") as fake:
        fake.script("rate_limit", "thoughts")
        client = genai.Client(api_key="k", http_options=HttpOptions(base_url=fake.base_url))
        ...
        assert fake.requests[0].config["imageConfig"] == {"imageSize": "2K"}

Behaviours, queued with ``FakeGemini.script`` and consumed one per request (``"ok"``
when the queue is empty):

- ``ok`` an image at the requested ratio and size; ``jpeg`` the same as JPEG;
  ``jpeg_labelled_png`` JPEG bytes declared as ``image/png`` (Gemini does this);
  ``thoughts`` a thought text part and a thought image before the real image.
- ``text_only`` a text answer and no image; ``safety_prompt`` a prompt block
  (``promptFeedback.blockReason`` SAFETY); ``block_prompt:REASON`` any block reason;
  ``safety_candidate`` finishReason IMAGE_SAFETY without parts; ``finish:REASON`` any
  finish reason without parts; ``empty_response`` ``{}``; ``malformed_json`` a
  truncated JSON body with status 200.
- ``rate_limit`` 429 with RetryInfo; ``quota_exhausted`` 429 for a per-day quota;
  ``server_error`` 500; ``overloaded_503``; ``gateway_timeout_504``;
  ``not_found_404``; ``unauthorized_401``; ``unauthorized_403`` (the message quotes
  the API key, as Google's "consumer suspended" errors do); ``invalid_key_400``
  (Google's answer to a wrong key); ``bad_request_400``.
- ``slow:SECONDS`` waits, then answers ``ok``; ``slow_error:SECONDS:FAULT`` waits, then
  answers as FAULT (a slow 503, say); ``disconnect`` closes the connection
  without an answer; ``cut_image`` sends half of an image answer, then hangs up.

``google_wire=True`` writes answers the way Google's front ends may: ``=`` escaped as
``\\u003d``, ``/`` as ``\\/``, and gzip when the client accepts it.

Besides generating, it answers the models list (``GET /v1beta/models``, paginated with
``pageSize`` and ``pageToken`` like Google, at most ``models_page_size`` a page):
``listed_models`` is what it lists, so a test can make a model disappear;
``list_fault`` (an HTTP status) makes the list fail. Like the real API it refuses, with
400 INVALID_ARGUMENT and Google's error body, a size or ratio the model does not offer
(``capabilities``, by model id; ids it has no entry for take everything). A request with
the ``googleSearch`` tool gets ``groundingMetadata`` in its candidate.

Every answer that carries ``usageMetadata`` counts tokens the way Gemini does:
``promptTokenCount`` is the prompt's text (a token per four characters) plus
``REFERENCE_TOKENS`` per reference image, broken down by modality in
``promptTokensDetails``; ``candidatesTokenCount`` is the image's tokens
(``IMAGE_TOKENS`` by size) plus the answer's text, broken down in
``candidatesTokensDetails``; thinking (``thoughtsTokenCount``) and the search results of
a grounded request (``toolUsePromptTokenCount``) are counted apart, and
``totalTokenCount`` is the sum of all four. ``FakeGemini.script_usage`` queues exact
``usageMetadata`` objects for the next answers instead.
"""

from __future__ import annotations

import base64
import collections
import contextlib
import gzip
import hashlib
import json
import re
import socket
import sys
import threading
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from tests.support.photos import photo_bytes

_PATH = re.compile(r"^/(?P<version>v1|v1beta)/models/(?P<model>[^/:]+):generateContent$")
_LIST_PATH = re.compile(r"^/(?P<version>v1|v1beta)/models/?$")
_LONG_SIDE = {"512": 512, "1K": 1024, "2K": 2048, "4K": 4096}
#: Image output tokens as Google bills them for Pro (flash is close enough for a fake).
IMAGE_TOKENS: dict[str, int] = {"512": 747, "1K": 1120, "2K": 1120, "4K": 2000}
#: Input tokens of one reference image: Gemini 3's budget for an image at medium media
#: resolution (what a 1K reference costs), whatever its pixel size here.
REFERENCE_TOKENS = 560
THOUGHT_TOKENS = 96
"""Thinking tokens of an answer with thoughts."""
GROUNDING_TOKENS = 42
"""Search-result tokens fed back to the model in a grounded answer."""
_RATIOS = frozenset(
    {"1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"}
    | {"1:4", "4:1", "1:8", "8:1"}
)
_STANDARD_RATIOS = frozenset(
    {"1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9"}
)


@dataclass(frozen=True)
class Capabilities:
    """The sizes and ratios one model takes (Google answers 400 to others)."""

    sizes: frozenset[str]
    ratios: frozenset[str]


#: What the real models take, as Google documents them (late 2026).
CAPABILITIES: dict[str, Capabilities] = {
    "gemini-3.1-flash-image": Capabilities(frozenset({"512", "1K", "2K", "4K"}), _RATIOS),
    "gemini-3-pro-image": Capabilities(frozenset({"1K", "2K", "4K"}), _STANDARD_RATIOS),
    "gemini-3.1-flash-lite-image": Capabilities(frozenset({"1K"}), _STANDARD_RATIOS),
    "gemini-nano-banana-2.1": Capabilities(frozenset({"1K", "2K", "4K"}), _RATIOS),
}
#: What the models list names by default: the image models and a few text models.
LISTED_MODELS: tuple[str, ...] = (
    "gemini-2.5-flash",
    "gemini-2.5-pro",
    "gemini-3-pro-image",
    "gemini-3.1-flash-image",
    "gemini-3.1-flash-lite-image",
    "gemini-nano-banana-2.1",
    "gemini-embedding-001",
)
_SIMPLE = frozenset(
    {
        "ok",
        "jpeg",
        "jpeg_labelled_png",
        "thoughts",
        "cut_image",
        "text_only",
        "safety_prompt",
        "safety_candidate",
        "empty_response",
        "malformed_json",
        "rate_limit",
        "quota_exhausted",
        "server_error",
        "overloaded_503",
        "gateway_timeout_504",
        "not_found_404",
        "unauthorized_401",
        "unauthorized_403",
        "invalid_key_400",
        "bad_request_400",
        "disconnect",
    }
)
_PARAMETRISED = ("slow:", "slow_error:", "block_prompt:", "finish:")
FAULTS = _SIMPLE | {p + "ARG" for p in _PARAMETRISED}
"""Every behaviour name ``script`` accepts (``ARG`` stands for the parameter)."""

DEFAULT_TEXT_REPLY = (
    "I can't create that image. I'm able to help with many other requests, though: "
    "for example I could describe the scene in words, suggest a different composition, "
    "or generate a picture of a similar subject that doesn't depict the specific "
    "elements you mentioned. Let me know how you would like to continue and I will do "
    "my best to help you get a result you are happy with. " * 2
).strip()


@dataclass(frozen=True)
class InlineImage:
    """An inline image part of a request, decoded."""

    mime_type: str
    data: bytes


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake saw it, so tests can assert on what the SDK sent."""

    method: str
    path: str
    api_version: str | None
    model: str | None
    api_key: str | None
    headers: dict[str, str]
    prompt: str
    config: dict[str, Any]
    images: tuple[InlineImage, ...]
    body: dict[str, Any]
    behaviour: str
    client_port: int


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes


class _Server(ThreadingHTTPServer):
    """Tracks open connections so ``stop`` can end keep-alive handlers promptly."""

    daemon_threads = False
    block_on_close = True

    def __init__(self, fake: FakeGemini) -> None:
        self.fake = fake
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        with self._open_lock:
            sockets = list(self._open)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Stay quiet about clients that hung up (timeouts do that on purpose)."""
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_POST(self) -> None:
        self.server.fake._serve(self)

    def do_GET(self) -> None:
        self.server.fake._serve(self)

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output clean."""


class FakeGemini:
    """Fake ``generativelanguage.googleapis.com`` for ``/v1`` and ``/v1beta``.

    ``api_key`` makes it answer like Google to any other key; ``known_models`` makes
    it answer 404 to other model ids. ``delay_seconds``, ``image_format`` and
    ``emit_thoughts`` are plain attributes that apply to every later request.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        known_models: Collection[str] | None = None,
        delay_seconds: float = 0.0,
        image_format: Literal["png", "jpeg"] = "png",
        emit_thoughts: bool = False,
        text_reply: str = DEFAULT_TEXT_REPLY,
        google_wire: bool = False,
        listed_models: Collection[str] | None = None,
        capabilities: dict[str, Capabilities] | None = None,
        models_page_size: int = 3,
    ) -> None:
        self.api_key = api_key
        self.listed_models: list[str] = list(
            listed_models if listed_models is not None else known_models or LISTED_MODELS
        )
        self.capabilities = dict(CAPABILITIES if capabilities is None else capabilities)
        self.models_page_size = models_page_size
        self.list_fault: int | None = None
        self._list_requests: list[RecordedRequest] = []
        self.known_models = frozenset(known_models) if known_models is not None else None
        self.delay_seconds = delay_seconds
        self.image_format: Literal["png", "jpeg"] = image_format
        self.emit_thoughts = emit_thoughts
        self.text_reply = text_reply
        self.google_wire = google_wire
        self._lock = threading.Lock()
        self._script: collections.deque[str] = collections.deque()
        self._usages: collections.deque[dict[str, Any] | None] = collections.deque()
        self._requests: list[RecordedRequest] = []
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> FakeGemini:
        """Listen on a free loopback port and serve from a background thread."""
        if self._server is not None:
            raise RuntimeError("FakeGemini is already running")
        self._stopping.clear()
        self._server = _Server(self)
        self._thread = threading.Thread(
            # A short poll interval keeps ``stop`` (and so each test's teardown) fast.
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name="fake-gemini",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, cut open connections and wait for every handler to finish."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()
        server.shutdown()
        server.drop_connections()
        server.server_close()
        thread.join()
        self._server = self._thread = None

    def __enter__(self) -> FakeGemini:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def port(self) -> int:
        """The port it listens on."""
        if self._server is None:
            raise RuntimeError("FakeGemini is not running")
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        """What to pass as ``HttpOptions(base_url=...)``."""
        return f"http://127.0.0.1:{self.port}"

    # -- scripting and inspection ----------------------------------------------------

    def script(self, *behaviours: str) -> None:
        """Queue behaviours for the next requests, one each, in order."""
        for behaviour in behaviours:
            _check_behaviour(behaviour)
        with self._lock:
            self._script.extend(behaviours)

    def script_usage(self, *usages: dict[str, Any] | None) -> None:
        """Queue exact ``usageMetadata`` for the next answers, one each, in order.

        Each is sent as given (camelCase wire names, e.g. ``{"promptTokenCount": 1290}``)
        in place of the counted one, whatever the behaviour; ``None`` sends an answer
        without ``usageMetadata``. Answers without a body (errors) consume one too.
        """
        with self._lock:
            self._usages.extend(usages)

    @property
    def pending(self) -> list[str]:
        """Scripted behaviours not consumed yet."""
        with self._lock:
            return list(self._script)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first."""
        with self._lock:
            return list(self._requests)

    @property
    def list_requests(self) -> list[RecordedRequest]:
        """Every models-list request so far (kept apart from ``requests``), oldest first."""
        with self._lock:
            return list(self._list_requests)

    def reset(self) -> None:
        """Forget recorded requests and the remaining script."""
        with self._lock:
            self._requests.clear()
            self._list_requests.clear()
            self._script.clear()
            self._usages.clear()

    # -- serving ---------------------------------------------------------------------

    def _serve(self, handler: _Handler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        if handler.command == "GET" and _LIST_PATH.match(urlsplit(handler.path).path):
            self._send(handler, self._list_models(handler))
            return
        with self._lock:
            behaviour = self._script.popleft() if self._script else "ok"
            scripted = _Scripted(self._usages.popleft()) if self._usages else None
        delay = self.delay_seconds
        if behaviour.startswith("slow:"):
            delay += float(behaviour.removeprefix("slow:"))
        elif behaviour.startswith("slow_error:"):
            seconds, _, behaviour = behaviour.removeprefix("slow_error:").partition(":")
            delay += float(seconds)
        record, reply = self._answer(handler, raw, behaviour, scripted)
        with self._lock:
            self._requests.append(record)
        if (delay > 0 and self._stopping.wait(delay)) or reply is None:
            handler.close_connection = True
            return
        self._send(handler, reply, cut=behaviour == "cut_image")

    def _send(self, handler: _Handler, reply: _Reply, *, cut: bool = False) -> None:
        """The reply as Google would write it; ``cut`` sends half of it and hangs up."""
        body = reply.body
        gzipped = self.google_wire and "gzip" in handler.headers.get("Accept-Encoding", "")
        if self.google_wire:
            body = body.replace(b"=", b"\\u003d").replace(b"/", b"\\/")
        if gzipped:
            body = gzip.compress(body, compresslevel=1)
        try:
            handler.send_response(reply.status)
            handler.send_header("Content-Type", "application/json; charset=UTF-8")
            handler.send_header("Content-Length", str(len(body)))
            if gzipped:
                handler.send_header("Content-Encoding", "gzip")
            handler.end_headers()
            if cut:
                handler.wfile.write(body[: len(body) // 2])
                handler.wfile.flush()
                handler.close_connection = True
                return
            handler.wfile.write(body)
        except OSError:
            handler.close_connection = True

    def _list_models(self, handler: _Handler) -> _Reply:
        """``models.list``: one page of ``listed_models``, with ``nextPageToken`` while more."""
        url = urlsplit(handler.path)
        key = handler.headers.get("x-goog-api-key") or _query_key(url.query)
        record = RecordedRequest(
            method="GET",
            path=url.path,
            api_version=url.path.split("/")[1],
            model=None,
            api_key=key,
            headers={k.lower(): v for k, v in handler.headers.items()},
            prompt="",
            config={},
            images=(),
            body=dict(parse_qs(url.query)),
            behaviour="list",
            client_port=int(handler.client_address[1]),
        )
        with self._lock:
            self._list_requests.append(record)
            listed = list(self.listed_models)
            fault = self.list_fault
        if fault is not None:
            return _error(fault, "UNAVAILABLE", "The service is currently unavailable.")
        if self.api_key is not None and key != self.api_key:
            return _invalid_key()
        query = parse_qs(url.query)
        asked = int(query.get("pageSize", ["50"])[0] or 50)
        size = max(1, min(asked, self.models_page_size))
        start = int(query.get("pageToken", ["0"])[0] or 0)
        page = listed[start : start + size]
        body: dict[str, Any] = {"models": [_model_entry(m) for m in page]}
        if start + size < len(listed):
            body["nextPageToken"] = str(start + size)
        return _json(200, body)

    def _answer(
        self, handler: _Handler, raw: bytes, behaviour: str, scripted: _Scripted | None
    ) -> tuple[RecordedRequest, _Reply | None]:
        url = urlsplit(handler.path)
        match = _PATH.match(url.path)
        key = handler.headers.get("x-goog-api-key") or _query_key(url.query)
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            body = None
        payload = body if isinstance(body, dict) else {}
        try:
            prompt, images = _user_content(payload)
        except ValueError:
            body, prompt, images = None, "", ()
        config = payload.get("generationConfig")
        record = RecordedRequest(
            method=handler.command,
            path=url.path,
            api_version=match["version"] if match else None,
            model=match["model"] if match else None,
            api_key=key,
            headers={k.lower(): v for k, v in handler.headers.items()},
            prompt=prompt,
            config=config if isinstance(config, dict) else {},
            images=images,
            body=payload,
            behaviour=behaviour,
            client_port=int(handler.client_address[1]),
        )
        if handler.command != "POST" or match is None:
            return record, _error(404, "NOT_FOUND", f"Method not found: {url.path}")
        if body is None or not isinstance(body, dict):
            return record, _error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        if not key:
            return record, _error(
                403,
                "PERMISSION_DENIED",
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity.",
            )
        if self.api_key is not None and key != self.api_key:
            return record, _invalid_key()
        model = match["model"]
        if self.known_models is not None and model not in self.known_models:
            return record, _not_found(model, match["version"])
        return record, self._behave(behaviour, record, key, scripted)

    def _behave(
        self, behaviour: str, record: RecordedRequest, key: str, scripted: _Scripted | None
    ) -> _Reply | None:
        name, _, arg = behaviour.partition(":")
        usage = _chosen(scripted, _usage(record))
        text_usage = _chosen(scripted, _usage(record, text=self.text_reply))
        faults: dict[str, Callable[[], _Reply | None]] = {
            "text_only": lambda: _ok(
                _candidate([{"text": self.text_reply}], "STOP"), text_usage, record
            ),
            "safety_prompt": lambda: _blocked_prompt("SAFETY", usage, record),
            "block_prompt": lambda: _blocked_prompt(arg, usage, record),
            "safety_candidate": lambda: _ok(_candidate(None, "IMAGE_SAFETY"), usage, record),
            "finish": lambda: _ok(_candidate(None, arg), usage, record),
            "empty_response": lambda: _Reply(200, b"{}"),
            "malformed_json": lambda: _Reply(200, b'{"candidates": [{"content": {"parts": [{"inl'),
            "rate_limit": _rate_limited,
            "quota_exhausted": _quota_exhausted,
            "server_error": lambda: _error(
                500,
                "INTERNAL",
                "An internal error has occurred. Please retry or report in "
                "https://developers.generativeai.google/guide/troubleshooting",
            ),
            "overloaded_503": lambda: _error(
                503, "UNAVAILABLE", "The model is overloaded. Please try again later."
            ),
            "gateway_timeout_504": lambda: _error(
                504, "DEADLINE_EXCEEDED", "Deadline expired before operation could complete."
            ),
            "not_found_404": lambda: _not_found(record.model or "", record.api_version or "v1"),
            "unauthorized_401": lambda: _error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access "
                "token, login cookie or other valid authentication credential.",
            ),
            "unauthorized_403": lambda: _suspended(key),
            "invalid_key_400": _invalid_key,
            "bad_request_400": lambda: _error(
                400, "INVALID_ARGUMENT", "Request contains an invalid argument."
            ),
            "disconnect": lambda: None,
        }
        fault = faults.get(name)
        return fault() if fault else self._image_reply(behaviour, record, scripted)

    def _image_reply(
        self, behaviour: str, record: RecordedRequest, scripted: _Scripted | None
    ) -> _Reply:
        image_config = _field(record.config, "imageConfig") or {}
        size = _field(image_config, "imageSize") or "1K"
        ratio = _field(image_config, "aspectRatio") or "1:1"
        takes = self.capabilities.get(
            record.model or "", Capabilities(frozenset(_LONG_SIDE), _RATIOS)
        )
        if size not in _LONG_SIDE or size not in takes.sizes:
            return _invalid_argument(
                f"Unsupported image size: {size} is not supported by models/{record.model}.",
                "generation_config.image_config.image_size",
            )
        if ratio not in _RATIOS or ratio not in takes.ratios:
            return _invalid_argument(
                f"Unsupported aspect ratio: {ratio} is not supported by models/{record.model}.",
                "generation_config.image_config.aspect_ratio",
            )
        modalities = _field(record.config, "responseModalities") or ["TEXT", "IMAGE"]
        if "IMAGE" not in modalities:
            words = "A picture, in words."
            usage = _chosen(scripted, _usage(record, text=words))
            return _ok(_candidate([{"text": words}], "STOP"), usage, record)
        jpeg = self.image_format == "jpeg" or behaviour in {"jpeg", "jpeg_labelled_png"}
        data = render(record.prompt, ratio, size, "JPEG" if jpeg else "PNG")
        declared = (
            "image/jpeg" if behaviour == "jpeg" or self.image_format == "jpeg" else "image/png"
        )
        parts: list[dict[str, Any]] = []
        thoughts = self.emit_thoughts or behaviour == "thoughts"
        if thoughts:
            draft = render("draft:" + record.prompt, "1:1", None, "PNG")
            parts += [
                {"text": "**Planning the composition**\nA first sketch.", "thought": True},
                {"inlineData": {"mimeType": "image/png", "data": _b64(draft)}, "thought": True},
            ]
        said = "Here is the image you asked for." if "TEXT" in modalities else ""
        if said:
            parts.append({"text": said})
        parts.append(
            {
                "inlineData": {"mimeType": declared, "data": _b64(data)},
                "thoughtSignature": _b64(b"fake-signature"),
            }
        )
        candidate = _candidate(parts, "STOP")
        grounded = _asks_for_search(record.body)
        if grounded:
            candidate["groundingMetadata"] = _grounding(record.prompt)
        counted = _usage(
            record, image_tokens=IMAGE_TOKENS[size], text=said, thoughts=thoughts, grounded=grounded
        )
        return _ok(candidate, _chosen(scripted, counted), record)


def dimensions(ratio: str, size: str | None) -> tuple[int, int]:
    """Pixel size for ``ratio`` with the long side of ``size`` (``None``: a 64 px draft)."""
    long_side = _LONG_SIDE[size] if size else 64
    width, height = (int(n) for n in ratio.split(":"))
    if width >= height:
        return long_side, max(1, round(long_side * height / width))
    return max(1, round(long_side * width / height)), long_side


def render(prompt: str, ratio: str, size: str | None, fmt: Literal["PNG", "JPEG"]) -> bytes:
    """A photo-like image at the real size (about 1.5 / 6 / 20 MB as PNG at 1K / 2K / 4K).

    The prompt seeds its content, so different prompts give different pictures; the
    same prompt, ratio and size give the same bytes (cached, so a test pays once).
    """
    seed = int.from_bytes(hashlib.sha256(prompt.encode()).digest()[:4], "big")
    width, height = dimensions(ratio, size)
    return photo_bytes(width, height, seed, fmt)


def _check_behaviour(behaviour: str) -> None:
    if behaviour in _SIMPLE:
        return
    prefix = next((p for p in _PARAMETRISED if behaviour.startswith(p)), None)
    arg = behaviour.removeprefix(prefix) if prefix else ""
    if prefix == "slow:":
        try:
            if float(arg) >= 0:
                return
        except ValueError:
            pass
    elif prefix == "slow_error:":
        seconds, _, fault = arg.partition(":")
        if seconds.replace(".", "", 1).isdigit() and fault in _SIMPLE:
            return
    elif prefix is not None and arg:
        return
    raise ValueError(f"unknown fake Gemini behaviour {behaviour!r}; known: {sorted(FAULTS)}")


def _field(obj: dict[str, Any], camel: str) -> Any:
    """``obj[camel]`` or its snake_case twin: Google's JSON parser accepts both."""
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", camel).lower()
    return obj.get(camel, obj.get(snake))


def _query_key(query: str) -> str | None:
    keys = parse_qs(query).get("key")
    return keys[0] if keys else None


def _user_content(body: dict[str, Any]) -> tuple[str, tuple[InlineImage, ...]]:
    texts: list[str] = []
    images: list[InlineImage] = []
    contents = body.get("contents")
    for content in contents if isinstance(contents, list) else []:
        for part in content.get("parts", []) if isinstance(content, dict) else []:
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("text"), str):
                texts.append(part["text"])
            # Like Google's proto-JSON parser, accept camelCase and snake_case names:
            # google-genai sends ``inlineData`` holding ``mime_type``.
            inline = part.get("inlineData", part.get("inline_data"))
            if isinstance(inline, dict):
                data = _decode_bytes(str(inline.get("data", "")))
                mime = inline.get("mimeType", inline.get("mime_type", ""))
                images.append(InlineImage(str(mime), data))
    return "\n".join(texts), tuple(images)


def _decode_bytes(text: str) -> bytes:
    """Proto-JSON bytes: standard or URL-safe base64 (the SDK sends URL-safe), padding optional."""
    standard = text.replace("-", "+").replace("_", "/")
    return base64.b64decode(standard + "=" * (-len(standard) % 4), validate=True)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _json(status: int, body: dict[str, Any]) -> _Reply:
    return _Reply(status, json.dumps(body, indent=2).encode())


@dataclass(frozen=True)
class _Scripted:
    """The ``usageMetadata`` a test scripted for one answer (``None``: none at all)."""

    usage: dict[str, Any] | None


def _chosen(scripted: _Scripted | None, counted: dict[str, Any]) -> dict[str, Any] | None:
    return counted if scripted is None else scripted.usage


def text_tokens(text: str) -> int:
    """How many tokens the fake counts for ``text``: one per four characters, at least one
    (none for no text)."""
    return max(1, len(text) // 4) if text else 0


def _usage(
    record: RecordedRequest,
    *,
    image_tokens: int = 0,
    text: str = "",
    thoughts: bool = False,
    grounded: bool = False,
) -> dict[str, Any]:
    """``usageMetadata`` as Gemini writes it; like its JSON, zero counts are left out."""
    prompt_text = text_tokens(record.prompt) or 1
    prompt_images = REFERENCE_TOKENS * len(record.images)
    output_text = text_tokens(text)
    usage: dict[str, Any] = {
        "promptTokenCount": prompt_text + prompt_images,
        "promptTokensDetails": _details(TEXT=prompt_text, IMAGE=prompt_images),
    }
    if image_tokens + output_text:
        usage["candidatesTokenCount"] = image_tokens + output_text
        usage["candidatesTokensDetails"] = _details(IMAGE=image_tokens, TEXT=output_text)
    if thoughts:
        usage["thoughtsTokenCount"] = THOUGHT_TOKENS
    if grounded:
        usage["toolUsePromptTokenCount"] = GROUNDING_TOKENS
    usage["totalTokenCount"] = sum(v for v in usage.values() if isinstance(v, int))
    return usage


def _details(**counts: int) -> list[dict[str, Any]]:
    """A ``ModalityTokenCount`` list, one entry per modality with tokens."""
    return [{"modality": m, "tokenCount": n} for m, n in counts.items() if n]


def _candidate(parts: list[dict[str, Any]] | None, finish_reason: str) -> dict[str, Any]:
    candidate: dict[str, Any] = {"finishReason": finish_reason, "index": 0}
    if parts is not None:
        candidate["content"] = {"parts": parts, "role": "model"}
    return candidate


def _ok(candidate: dict[str, Any], usage: dict[str, Any] | None, record: RecordedRequest) -> _Reply:
    return _json(200, _answer_body({"candidates": [candidate]}, usage, record))


def _blocked_prompt(reason: str, usage: dict[str, Any] | None, record: RecordedRequest) -> _Reply:
    return _json(200, _answer_body({"promptFeedback": {"blockReason": reason}}, usage, record))


def _answer_body(
    body: dict[str, Any], usage: dict[str, Any] | None, record: RecordedRequest
) -> dict[str, Any]:
    if usage is not None:
        body["usageMetadata"] = usage
    return {**body, "modelVersion": record.model, "responseId": uuid.uuid4().hex[:22]}


def _error(
    code: int, status: str, message: str, details: list[dict[str, Any]] | None = None
) -> _Reply:
    error: dict[str, Any] = {"code": code, "message": message, "status": status}
    if details:
        error["details"] = details
    return _json(code, {"error": error})


def _not_found(model: str, version: str) -> _Reply:
    return _error(
        404,
        "NOT_FOUND",
        f"models/{model} is not found for API version {version}, or is not supported for "
        "generateContent. Call ListModels to see the list of available models and their "
        "supported methods.",
    )


def _invalid_argument(message: str, field: str) -> _Reply:
    """Google's answer to a field value the model does not take."""
    return _error(
        400,
        "INVALID_ARGUMENT",
        message,
        [
            {
                "@type": "type.googleapis.com/google.rpc.BadRequest",
                "fieldViolations": [{"field": field, "description": message}],
            }
        ],
    )


def _model_entry(model_id: str) -> dict[str, Any]:
    """One ``Model`` of the models list, shaped like Google's."""
    image = "image" in model_id
    return {
        "name": f"models/{model_id}",
        "version": "001",
        "displayName": model_id.replace("-", " ").title(),
        "inputTokenLimit": 65536 if image else 1048576,
        "outputTokenLimit": 32768 if image else 65536,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
    }


def _asks_for_search(body: dict[str, Any]) -> bool:
    tools = body.get("tools")
    return isinstance(tools, list) and any(
        isinstance(t, dict) and ("googleSearch" in t or "google_search" in t) for t in tools
    )


def _grounding(prompt: str) -> dict[str, Any]:
    """What Google returns when it searched the web for a prompt."""
    query = " ".join(prompt.split()[:6]) or "image"
    return {
        "webSearchQueries": [query],
        "searchEntryPoint": {"renderedContent": f"<div class='search'>{query}</div>"},
        "groundingChunks": [
            {"web": {"uri": "https://example.org/source-1", "title": "example.org"}},
            {"web": {"uri": "https://example.com/source-2", "title": "example.com"}},
        ],
        "groundingSupports": [
            {"segment": {"startIndex": 0, "endIndex": 10}, "groundingChunkIndices": [0, 1]}
        ],
    }


def _invalid_key() -> _Reply:
    return _error(
        400,
        "INVALID_ARGUMENT",
        "API key not valid. Please pass a valid API key.",
        [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }
        ],
    )


def _suspended(key: str) -> _Reply:
    """Google quotes the key in some 403s: the adapter must never pass that on."""
    return _error(
        403,
        "PERMISSION_DENIED",
        f"Permission denied: Consumer 'api_key:{key}' has been suspended.",
        [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "CONSUMER_SUSPENDED",
                "domain": "googleapis.com",
                "metadata": {"consumer": f"projects/123/apiKeys/{key}"},
            }
        ],
    )


def _rate_limited() -> _Reply:
    return _error(
        429,
        "RESOURCE_EXHAUSTED",
        "Resource has been exhausted (e.g. check quota).",
        [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "2s"}],
    )


def _quota_exhausted() -> _Reply:
    return _error(
        429,
        "RESOURCE_EXHAUSTED",
        "You exceeded your current quota, please check your plan and billing details. "
        "For more information on this error, head to: "
        "https://ai.google.dev/gemini-api/docs/rate-limits.",
        [
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [
                    {
                        "quotaMetric": (
                            "generativelanguage.googleapis.com/generate_content_free_tier_requests"
                        ),
                        "quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier",
                    }
                ],
            },
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "41s"},
        ],
    )
