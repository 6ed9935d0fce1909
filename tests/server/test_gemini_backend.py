"""GeminiImageBackend through the real google-genai client against the fake Gemini server."""

from __future__ import annotations

import io
import logging
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from PIL import Image

from image_core.domain import (
    AspectRatio,
    BackendImage,
    BackendRequest,
    ImageSize,
    ReferenceImage,
    TokenUsage,
)
from image_core.errors import (
    BackendError,
    BackendMisconfigured,
    BackendRefused,
    BackendUnavailable,
    InvalidConfiguration,
)
from image_server.adapters.gemini import DEFAULT_BASE_URL, QUOTE_CHARS, GeminiImageBackend
from tests.fakes.fake_gemini import (
    DEFAULT_TEXT_REPLY,
    IMAGE_TOKENS,
    REFERENCE_TOKENS,
    FakeGemini,
    InlineImage,
    render,
    text_tokens,
)

pytestmark = pytest.mark.anyio

KEY = "AIzaSyFAKE-test-key-0123456789abcdef"
MODEL = "gemini-3.1-flash-image"
PROMPT = "a lighthouse at dusk, oil painting"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def fake() -> Iterator[FakeGemini]:
    with FakeGemini(api_key=KEY) as server:
        yield server


def make_backend(fake: FakeGemini, **overrides: float | str) -> GeminiImageBackend:
    settings: dict[str, float | str] = {
        "timeout_seconds": 60.0,  # a 4K photo from the fake takes seconds on a busy machine
        "max_attempts": 3,
        "initial_backoff_seconds": 0.001,
        "max_backoff_seconds": 0.01,
    }
    settings.update(overrides)
    return GeminiImageBackend(
        api_key=KEY,
        base_url=fake.base_url,
        timeout_seconds=float(settings["timeout_seconds"]),
        max_attempts=int(settings["max_attempts"]),
        initial_backoff_seconds=float(settings["initial_backoff_seconds"]),
        max_backoff_seconds=float(settings["max_backoff_seconds"]),
        api_version=str(settings["api_version"]) if "api_version" in settings else None,
        **{
            name: float(settings[name])
            for name in ("fast_failure_seconds", "retry_window_seconds")
            if name in settings
        },
    )


@pytest.fixture
async def backend(fake: FakeGemini) -> AsyncIterator[GeminiImageBackend]:
    async with make_backend(fake) as gemini:
        yield gemini


def ask(
    size: ImageSize = ImageSize.S1K,
    ratio: AspectRatio | None = None,
    references: tuple[ReferenceImage, ...] = (),
    prompt: str = PROMPT,
) -> BackendRequest:
    return BackendRequest(MODEL, prompt, size, ratio, references)


def decoded(image: BackendImage) -> Image.Image:
    picture = Image.open(io.BytesIO(image.data))
    picture.load()
    return picture


def assert_no_key(error: BaseException) -> None:
    """Neither the error nor anything a traceback would print with it holds the key."""
    shown = [str(error), repr(error), getattr(error, "message", "")]
    if error.__cause__ is not None:
        shown.append(str(error.__cause__))
    if error.__context__ is not None and not error.__suppress_context__:
        shown.append(str(error.__context__))
    assert not any(KEY in text for text in shown)


async def test_the_backend_is_named_gemini(backend: GeminiImageBackend) -> None:
    """Generations record which backend made them."""
    assert backend.name == "gemini"


@pytest.mark.parametrize(
    ("size", "ratio", "expected"),
    [
        (ImageSize.S1K, AspectRatio.R1_1, (1024, 1024)),
        (ImageSize.S2K, AspectRatio.R16_9, (2048, 1152)),
        (ImageSize.S4K, AspectRatio.R9_16, (2304, 4096)),
        (ImageSize.S1K, AspectRatio.R21_9, (1024, 439)),
        (ImageSize.S2K, None, (2048, 2048)),
    ],
)
async def test_an_image_comes_back_at_the_requested_size_and_ratio(
    fake: FakeGemini,
    backend: GeminiImageBackend,
    size: ImageSize,
    ratio: AspectRatio | None,
    expected: tuple[int, int],
) -> None:
    """Size and ratio reach Gemini as imageConfig and shape the returned PNG."""
    image = await backend.generate(ask(size, ratio))

    picture = decoded(image)
    assert (picture.format, picture.size, image.mime_type) == ("PNG", expected, "image/png")
    [sent] = fake.requests
    assert (sent.path, sent.model, sent.api_key) == (
        f"/v1/models/{MODEL}:generateContent",
        MODEL,
        KEY,
    )
    assert sent.prompt == PROMPT
    image_config = {"imageSize": size.value}
    if ratio is not None:
        image_config["aspectRatio"] = ratio.value
    assert sent.config == {"responseModalities": ["TEXT", "IMAGE"], "imageConfig": image_config}
    assert sent.images == ()


async def test_reference_images_are_sent_inline_in_order(
    fake: FakeGemini, backend: GeminiImageBackend
) -> None:
    """Iterating on earlier images sends their bytes and types after the prompt."""
    png = render("earlier", "1:1", None, "PNG")
    jpeg = render("older", "4:3", None, "JPEG")
    references = (
        ReferenceImage(uuid.uuid4(), png),
        ReferenceImage(uuid.uuid4(), jpeg, "image/jpeg"),
    )

    await backend.generate(ask(references=references, prompt="same scene at night"))

    [sent] = fake.requests
    assert sent.prompt == "same scene at night"
    assert sent.images == (InlineImage("image/png", png), InlineImage("image/jpeg", jpeg))


async def test_the_api_version_can_be_chosen(fake: FakeGemini) -> None:
    """v1beta stays reachable for models that appear there first."""
    async with make_backend(fake, api_version="v1beta") as gemini:
        await gemini.generate(ask())

    assert fake.requests[0].path == f"/v1beta/models/{MODEL}:generateContent"


async def test_one_sdk_client_serves_every_call(
    fake: FakeGemini, backend: GeminiImageBackend
) -> None:
    """Calls reuse one pooled connection instead of building a client per call."""
    await backend.generate(ask())
    await backend.generate(ask())

    first, second = fake.requests
    assert first.client_port == second.client_port


@pytest.mark.parametrize("behaviour", ["jpeg", "jpeg_labelled_png"])
async def test_a_jpeg_reply_is_reported_as_jpeg(
    fake: FakeGemini, backend: GeminiImageBackend, behaviour: str
) -> None:
    """The media type comes from the bytes, since Gemini may label JPEG as PNG."""
    fake.script(behaviour)

    image = await backend.generate(ask(ImageSize.S1K, AspectRatio.R4_3))

    assert image.mime_type == "image/jpeg"
    assert (decoded(image).format, decoded(image).size) == ("JPEG", (1024, 768))


async def test_thought_parts_are_skipped_and_their_tokens_counted(
    fake: FakeGemini, backend: GeminiImageBackend
) -> None:
    """Pro's draft images and reasoning are not the answer, but their tokens are billed."""
    fake.script("thoughts")

    image = await backend.generate(ask(ImageSize.S2K, AspectRatio.R3_2))

    assert decoded(image).size == (2048, 1365)
    assert image.token_usage is not None
    assert image.token_usage.thoughts_tokens == 96


async def test_token_usage_is_reported(backend: GeminiImageBackend) -> None:
    """Token counts, by modality, feed the true cost beside the list-price estimate."""
    reference = ReferenceImage(uuid.uuid4(), render("earlier", "1:1", None, "PNG"))

    image = await backend.generate(ask(ImageSize.S4K, references=(reference,)))

    prompt_text = text_tokens(PROMPT)
    said = text_tokens("Here is the image you asked for.")
    prompt_tokens = prompt_text + REFERENCE_TOKENS
    assert image.token_usage == TokenUsage(
        prompt_tokens=prompt_tokens,
        output_tokens=IMAGE_TOKENS["4K"] + said,
        thoughts_tokens=None,
        total_tokens=prompt_tokens + IMAGE_TOKENS["4K"] + said,
        image_output_tokens=IMAGE_TOKENS["4K"],
        text_output_tokens=said,
        image_input_tokens=REFERENCE_TOKENS,
        tool_use_prompt_tokens=None,
    )


@pytest.mark.parametrize(
    ("behaviour", "text"),
    [
        ("text_only", DEFAULT_TEXT_REPLY),
        ("safety_prompt", ""),
        ("block_prompt:PROHIBITED_CONTENT", ""),
        ("safety_candidate", ""),
        ("finish:MAX_TOKENS", ""),
    ],
)
async def test_an_answer_without_an_image_still_reports_its_usage(
    fake: FakeGemini, backend: GeminiImageBackend, behaviour: str, text: str
) -> None:
    """A refusal Gemini answered is billed for its tokens: the error carries them."""
    fake.script(behaviour)

    with pytest.raises(BackendError) as caught:
        await backend.generate(ask())

    prompt = text_tokens(PROMPT)
    said = text_tokens(text)
    assert caught.value.token_usage == TokenUsage(
        prompt_tokens=prompt,
        output_tokens=said or None,
        total_tokens=prompt + said,
        text_output_tokens=said or None,
    )


@pytest.mark.parametrize("behaviour", ["empty_response", "bad_request_400", "rate_limit"])
async def test_an_answer_without_usage_reports_none(
    fake: FakeGemini, backend: GeminiImageBackend, behaviour: str
) -> None:
    fake.script(behaviour, behaviour, behaviour)

    with pytest.raises(BackendError) as caught:
        await backend.generate(ask())

    assert caught.value.token_usage is None


@pytest.mark.parametrize(
    ("behaviour", "error", "fragments"),
    [
        ("safety_prompt", BackendRefused, ["blocked the prompt", "SAFETY", "Rephrase"]),
        ("block_prompt:PROHIBITED_CONTENT", BackendRefused, ["PROHIBITED_CONTENT", "prompt"]),
        ("block_prompt:OTHER", BackendRefused, ["OTHER", "Rephrase"]),
        ("safety_candidate", BackendRefused, ["IMAGE_SAFETY", "withheld", "Rephrase"]),
        ("finish:SAFETY", BackendRefused, ["SAFETY", "Rephrase"]),
        ("finish:PROHIBITED_CONTENT", BackendRefused, ["PROHIBITED_CONTENT"]),
        ("finish:IMAGE_PROHIBITED_CONTENT", BackendRefused, ["IMAGE_PROHIBITED_CONTENT"]),
        ("finish:IMAGE_RECITATION", BackendRefused, ["IMAGE_RECITATION", "original"]),
        ("finish:RECITATION", BackendRefused, ["RECITATION", "copyrighted"]),
        ("finish:IMAGE_OTHER", BackendRefused, ["IMAGE_OTHER", "Rephrase"]),
        ("finish:NO_IMAGE", BackendRefused, ["NO_IMAGE", "Generate an image of"]),
        ("finish:MAX_TOKENS", BackendError, ["no image", "MAX_TOKENS"]),
        ("empty_response", BackendUnavailable, ["neither an image nor a reason"]),
        ("malformed_json", BackendUnavailable, ["could not be read"]),
        ("not_found_404", BackendMisconfigured, [MODEL, "retired", "IMG_MODEL_FLASH"]),
        ("unauthorized_401", BackendMisconfigured, ["API key", "GEMINI_API_KEY"]),
        ("unauthorized_403", BackendMisconfigured, ["API key", "GEMINI_API_KEY", "suspended"]),
        ("invalid_key_400", BackendMisconfigured, ["API key", "GEMINI_API_KEY"]),
        ("bad_request_400", BackendError, ["rejected the request", "400"]),
        ("quota_exhausted", BackendUnavailable, ["daily quota", "billing"]),
        ("disconnect", BackendUnavailable, ["connection to Gemini broke"]),
    ],
)
async def test_each_fault_is_a_specific_error_and_is_not_retried(
    fake: FakeGemini,
    backend: GeminiImageBackend,
    behaviour: str,
    error: type[BackendError],
    fragments: list[str],
) -> None:
    """Refusals, bad configuration and unreadable answers fail once, plainly, keylessly."""
    fake.script(behaviour, behaviour, behaviour)

    with pytest.raises(BackendError) as caught:
        await backend.generate(ask())

    assert type(caught.value) is error
    for fragment in fragments:
        assert fragment in caught.value.message
    assert_no_key(caught.value)
    assert len(fake.requests) == 1


async def test_a_text_only_answer_is_quoted_and_truncated(
    fake: FakeGemini, backend: GeminiImageBackend
) -> None:
    """The model's own words explain a refusal better than a generic message."""
    fake.script("text_only")

    with pytest.raises(BackendRefused) as caught:
        await backend.generate(ask())

    message = caught.value.message
    assert "text instead of an image" in message
    assert DEFAULT_TEXT_REPLY[:100] in message
    assert len(DEFAULT_TEXT_REPLY) > QUOTE_CHARS
    assert DEFAULT_TEXT_REPLY not in message
    assert "…" in message


async def test_a_rate_limit_then_success_takes_two_requests(
    fake: FakeGemini, backend: GeminiImageBackend
) -> None:
    """A passing 429 is retried and the image still arrives."""
    fake.script("rate_limit")

    image = await backend.generate(ask())

    assert decoded(image).size == (1024, 1024)
    assert [r.behaviour for r in fake.requests] == ["rate_limit", "ok"]


@pytest.mark.parametrize(
    ("behaviour", "fragments"),
    [
        ("server_error", ["failed on its side", "HTTP 500"]),
        ("overloaded_503", ["overloaded", "HTTP 503", "flash"]),
        ("gateway_timeout_504", ["HTTP 504"]),
        ("rate_limit", ["rate limiting", "HTTP 429", "try again in a minute"]),
    ],
)
async def test_a_persistent_passing_failure_stops_after_max_attempts(
    fake: FakeGemini, backend: GeminiImageBackend, behaviour: str, fragments: list[str]
) -> None:
    """Retries are bounded: exactly max_attempts requests, then a clear error."""
    fake.script(*[behaviour] * 5)

    with pytest.raises(BackendUnavailable) as caught:
        await backend.generate(ask())

    assert len(fake.requests) == 3
    message = caught.value.message
    assert "gave up after 3 attempts" in message
    for fragment in fragments:
        assert fragment.lower() in message.lower()
    assert_no_key(caught.value)


async def test_backoff_between_attempts_grows_within_its_cap(fake: FakeGemini) -> None:
    """Waits of about 0.1 s then 0.2 s (with jitter) separate three failing attempts."""
    fake.script("server_error", "server_error", "server_error")
    started = time.monotonic()

    async with make_backend(fake, initial_backoff_seconds=0.1, max_backoff_seconds=0.2) as gemini:
        with pytest.raises(BackendUnavailable):
            await gemini.generate(ask())

    assert 0.15 <= time.monotonic() - started < 1.5


async def test_geminis_retry_delay_is_honoured_up_to_the_cap(fake: FakeGemini) -> None:
    """A 429 asking for 2 s waits the full cap (0.3 s) rather than the tiny backoff.

    Measured against a plain call on the same machine, so a slow machine cannot make a
    0.3 s wait look like the 2 s one.
    """
    async with make_backend(fake, initial_backoff_seconds=0.001, max_backoff_seconds=0.3) as gemini:
        started = time.monotonic()
        await gemini.generate(ask())
        plain = time.monotonic() - started
        fake.script("rate_limit")
        started = time.monotonic()
        await gemini.generate(ask())
        slowed = time.monotonic() - started

    assert slowed >= 0.3
    assert slowed - plain < 1.5


async def test_a_bad_request_is_sent_only_once(
    fake: FakeGemini, backend: GeminiImageBackend
) -> None:
    """A 400 will fail again unchanged, so it is never retried."""
    fake.script("bad_request_400", "ok")

    with pytest.raises(BackendError):
        await backend.generate(ask())

    assert len(fake.requests) == 1


async def test_a_request_that_timed_out_is_sent_once_only(fake: FakeGemini) -> None:
    """Gemini may still process (and bill) a request we stopped waiting for: never resend it."""
    fake.delay_seconds = 2.0
    started = time.monotonic()

    async with make_backend(fake, timeout_seconds=0.5, max_attempts=3) as gemini:
        with pytest.raises(BackendUnavailable) as caught:
            await gemini.generate(ask())

    assert time.monotonic() - started < 1.9
    assert "did not answer within 0.5 s" in caught.value.message
    assert "not sent again" in caught.value.message
    assert len(fake.requests) == 1


async def test_the_text_beside_the_image_is_kept_without_the_thoughts(fake: FakeGemini) -> None:
    """The model's own words become the note; its thought parts are not the answer."""
    fake.script("thoughts")

    async with make_backend(fake) as gemini:
        image = await gemini.generate(ask())

    assert image.text == "Here is the image you asked for."


async def test_a_timeout_and_a_broken_connection_may_have_been_billed(fake: FakeGemini) -> None:
    """Both failures say so, so the service records their estimated cost."""
    fake.script("slow:2", "disconnect")

    async with make_backend(fake, timeout_seconds=0.5, max_attempts=1) as gemini:
        with pytest.raises(BackendUnavailable) as timed_out:
            await gemini.generate(ask())
        with pytest.raises(BackendUnavailable) as broken:
            await gemini.generate(ask())

    assert timed_out.value.may_be_billed
    assert broken.value.may_be_billed


async def test_a_quick_refusal_was_not_billed(fake: FakeGemini) -> None:
    """A safety block costs nothing: the error says the request was not billed."""
    fake.script("safety_prompt")

    async with make_backend(fake) as gemini:
        with pytest.raises(BackendRefused) as caught:
            await gemini.generate(ask())

    assert not caught.value.may_be_billed


async def test_fast_429_and_503_are_retried_and_the_image_arrives(fake: FakeGemini) -> None:
    """A quick refusal means Gemini did not take the request: sending it again is safe."""
    fake.script("rate_limit", "overloaded_503")

    async with make_backend(fake) as gemini:
        image = await gemini.generate(ask())

    assert image.mime_type == "image/png"
    assert [r.behaviour for r in fake.requests] == ["rate_limit", "overloaded_503", "ok"]


async def test_a_slow_server_error_is_not_sent_again(fake: FakeGemini) -> None:
    """A 5xx that took long may have followed real work: treated like a timeout."""
    fake.script("slow_error:1.5:overloaded_503")

    async with make_backend(fake, fast_failure_seconds=1.0) as gemini:
        with pytest.raises(BackendUnavailable) as caught:
            await gemini.generate(ask())

    assert "overloaded" in caught.value.message
    assert len(fake.requests) == 1


async def test_no_retry_starts_after_the_retry_window(fake: FakeGemini) -> None:
    """Retries fit in the tool's deadline: past it, the last error is reported instead."""
    fake.script("rate_limit", "rate_limit", "rate_limit")

    async with make_backend(
        fake, retry_window_seconds=0.2, initial_backoff_seconds=0.5, max_backoff_seconds=0.5
    ) as gemini:
        started = time.monotonic()
        with pytest.raises(BackendUnavailable) as caught:
            await gemini.generate(ask())

    assert time.monotonic() - started < 0.5
    assert "rate limiting" in caught.value.message
    assert len(fake.requests) == 1


async def test_an_unreachable_gemini_is_reported_after_bounded_retries() -> None:
    """A refused connection sent nothing, so it is retried, then named plainly."""
    with FakeGemini() as gone:
        base_url = gone.base_url

    async with GeminiImageBackend(
        api_key=KEY, base_url=base_url, max_attempts=2, initial_backoff_seconds=0.001
    ) as gemini:
        with pytest.raises(BackendUnavailable) as caught:
            await gemini.generate(ask())

    assert "Could not connect to the Gemini API; gave up after 2 attempts" in caught.value.message


async def test_an_unknown_model_logs_the_setting_to_change(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A retired model id tells the operator which setting to fix."""
    with FakeGemini(api_key=KEY, known_models={"gemini-3-pro-image"}) as fake:
        async with make_backend(fake) as gemini:
            with (
                caplog.at_level(logging.WARNING, logger="image_server.gemini"),
                pytest.raises(BackendMisconfigured) as caught,
            ):
                await gemini.generate(ask())

    assert "IMG_MODEL_FLASH" in caught.value.message
    [record] = [r for r in caplog.records if r.name == "image_server.gemini"]
    assert record.levelno == logging.WARNING
    assert MODEL in record.getMessage()
    assert "IMG_MODEL_FLASH" in record.getMessage()
    assert KEY not in caplog.text


async def test_a_wrong_key_is_reported_without_echoing_any_key(fake: FakeGemini) -> None:
    """Google answers a wrong key with a 400; the message points at GEMINI_API_KEY."""
    async with GeminiImageBackend(api_key="wrong-key-123", base_url=fake.base_url) as gemini:
        with pytest.raises(BackendMisconfigured) as caught:
            await gemini.generate(ask())

    assert "GEMINI_API_KEY" in caught.value.message
    assert "wrong-key-123" not in caught.value.message
    assert fake.requests[0].api_key == "wrong-key-123"


async def test_sdk_environment_variables_cannot_redirect_requests(
    fake: FakeGemini, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only our settings decide where requests go and which key they carry."""
    monkeypatch.setenv("GOOGLE_GENAI_USE_VERTEXAI", "true")
    monkeypatch.setenv("GOOGLE_API_KEY", "env-key")
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", "http://127.0.0.1:9")

    async with make_backend(fake) as gemini:
        await gemini.generate(ask())

    assert fake.requests[0].api_key == KEY


@pytest.mark.parametrize("api_key", ["", "   "])
def test_an_empty_api_key_is_refused_at_construction(api_key: str) -> None:
    """A missing key is a configuration error, not a failure on the first request."""
    with pytest.raises(InvalidConfiguration, match="GEMINI_API_KEY"):
        GeminiImageBackend(api_key=api_key)


def test_without_a_base_url_requests_go_to_googles_gemini_api(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The SDK's GOOGLE_GEMINI_BASE_URL cannot silently redirect production traffic."""
    monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", "http://127.0.0.1:9")

    client = GeminiImageBackend(api_key=KEY)._client

    assert client._api_client._http_options.base_url == DEFAULT_BASE_URL


class Pieces:
    """An ``ImageSink`` that keeps each piece it is handed since it last started over."""

    def __init__(self) -> None:
        self.pieces: list[bytes] = []
        self.restarts = 0

    def write(self, chunk: bytes) -> None:
        self.pieces.append(chunk)

    def start_over(self) -> None:
        self.pieces = []
        self.restarts += 1


class Failing(Pieces):
    """A sink that breaks at its third piece."""

    def write(self, chunk: bytes) -> None:
        if len(self.pieces) == 2:
            raise RuntimeError("the receiver broke")
        super().write(chunk)


@pytest.mark.parametrize("google_wire", [False, True])
async def test_the_image_reaches_the_sink_in_pieces_while_it_arrives(
    fake: FakeGemini, google_wire: bool
) -> None:
    """Compact, escaped or gzipped JSON: the sink gets the PNG, in order, in many pieces."""
    fake.google_wire = google_wire
    sink = Pieces()

    async with make_backend(fake) as gemini:
        image = await gemini.generate_streaming(ask(ImageSize.S2K), sink)

    expected = render(PROMPT, "1:1", "2K", "PNG")
    assert image.data == expected
    assert b"".join(sink.pieces) == expected
    assert len(sink.pieces) > 10
    assert image.mime_type == "image/png"
    assert image.token_usage is not None
    assert image.token_usage.output_tokens


async def test_a_jpeg_answer_is_returned_whole_and_the_sink_is_not_used(
    fake: FakeGemini,
) -> None:
    """Only PNGs are decoded early; a JPEG comes back as before."""
    fake.script("jpeg")
    sink = Pieces()

    async with make_backend(fake) as gemini:
        image = await gemini.generate_streaming(ask(), sink)

    assert image.mime_type == "image/jpeg"
    assert decoded(image).format == "JPEG"
    assert sink.pieces == []


async def test_an_answer_cut_inside_the_image_may_have_been_billed_and_is_not_resent(
    fake: FakeGemini,
) -> None:
    """Half an image and a closed connection: one request, an error that says it may cost."""
    fake.script("cut_image")

    async with make_backend(fake) as gemini:
        with pytest.raises(BackendUnavailable) as caught:
            await gemini.generate_streaming(ask(), Pieces())

    assert caught.value.may_be_billed
    assert len(fake.requests) == 1
    assert_no_key(caught.value)


async def test_thought_images_before_the_answer_do_not_replace_it(fake: FakeGemini) -> None:
    """A draft image comes first; the image returned is still the final one."""
    fake.script("thoughts")
    sink = Pieces()

    async with make_backend(fake) as gemini:
        image = await gemini.generate_streaming(ask(), sink)

    assert image.data == render(PROMPT, "1:1", "1K", "PNG")
    assert decoded(image).size == (1024, 1024)
    assert sink.restarts == 1  # the draft came first; then the sink started over
    assert b"".join(sink.pieces) == image.data


async def test_a_receiver_that_fails_costs_nothing_but_the_early_start(fake: FakeGemini) -> None:
    """The image was paid for: it comes back whole though the sink broke halfway."""
    sink = Failing()

    async with make_backend(fake) as gemini:
        image = await gemini.generate_streaming(ask(ImageSize.S2K), sink)

    assert image.data == render(PROMPT, "1:1", "2K", "PNG")
    assert len(sink.pieces) == 2
