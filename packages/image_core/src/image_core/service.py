"""Use cases: generate an image, query usage and galleries, choose a default model.

The service decides; adapters only do I/O. It is the one thing drivers (the MCP tool,
the dashboard, the public image route) talk to: every use case is ``async`` and runs its
blocking port calls (files, image codec) in worker threads, so one large image never
stalls the event loop and no driver can forget to move work off it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import date, timedelta
from decimal import Decimal
from typing import TypeVar, overload

import attrs

from image_core import names
from image_core.access import AccessPolicy, owner_key
from image_core.background import BackgroundWork
from image_core.budgets import Budgets, Period
from image_core.catalog import ModelCatalog
from image_core.domain import (
    AspectRatio,
    BackendImage,
    BackendRequest,
    CostBasis,
    CostEstimate,
    DailySpend,
    EncodedImage,
    FailedImage,
    FoundGeneration,
    GalleryPage,
    Generation,
    GenerationBatch,
    GenerationRequest,
    GenerationResult,
    GenerationStatus,
    Grounding,
    Identity,
    ImageOutcome,
    ImageSize,
    ModelSpec,
    PendingGeneration,
    ProcessedImage,
    ReconcileReport,
    ReferenceImage,
    TokenUsage,
    Upload,
    UsageReport,
)
from image_core.errors import (
    BackendError,
    BackendMisconfigured,
    ImageMcpError,
    InvalidImage,
    InvalidRequest,
    NotAllowed,
    NotAllowedReason,
    ReferenceNotFound,
    StorageError,
    UnsupportedByModel,
)
from image_core.ledger import (
    BudgetUse,
    CostRow,
    PersonSpend,
    PersonStanding,
    RebuildProgress,
    SpendOverview,
    is_calendar_month,
)
from image_core.limits import Admission, CallLimits, Gate
from image_core.png import PNG_SIGNATURE, png_size
from image_core.ports import (
    Clock,
    IdSource,
    ImageBackend,
    ImageCodec,
    ImageProcessing,
    ImageStore,
    MetadataRepository,
    ModelAvailability,
    OpenedFile,
    PrefStore,
    PublicImageFiles,
    StreamingImageBackend,
    UploadStore,
)
from image_core.pricing import cost_from_usage
from image_core.uploads import DEFAULT_MAX_BYTES, DEFAULT_PER_PERSON, Uploads

MAX_PAGE_SIZE = 200
_T = TypeVar("_T")
MIN_EXPECTED_SECONDS = 5
INTERRUPTED = "Interrupted by a restart before the image was stored."
UNEXPECTED = "An unexpected error stopped it."


@attrs.define
class _Waiter:
    """What the paid work knows of its caller: gone, or told of a refusal already."""

    left: bool = False
    refused: ImageMcpError | None = None
    recorded: Generation | None = None
    """The ``FAILED`` record kept for a failure that may have been billed."""


@attrs.frozen
class ImageService:
    """Everything the MCP tool and the dashboard can do, independent of both.

    Emails are normalised here, once (``access.owner_key``): every port receives them
    normalised and compares them exactly.

    The ports are private: drivers call the use cases and queries below and never reach
    behind them. Construct it with the port names as keywords (``catalog=``,
    ``images=``, ...). Every use case that touches a port is ``async`` and runs the
    blocking port calls in a worker thread, so no driver has to remember to.

    The paid part of each generation runs in ``background`` (a ``BackgroundWork``; the
    composition root passes the one it drains at shutdown).
    """

    _catalog: ModelCatalog = attrs.field(alias="catalog")
    _policy: AccessPolicy = attrs.field(alias="policy")
    _images: ImageStore = attrs.field(alias="images")
    _metadata: MetadataRepository = attrs.field(alias="metadata")
    _prefs: PrefStore = attrs.field(alias="prefs")
    _backend: ImageBackend = attrs.field(alias="backend")
    _codec: ImageCodec = attrs.field(alias="codec")
    _clock: Clock = attrs.field(alias="clock")
    _ids: IdSource = attrs.field(alias="ids")
    preview_max_side: int = 768
    thumbnail_max_side: int = 384
    reference_max_bytes: int = 7 * 1024 * 1024
    """What one reference may weigh as sent (Gemini takes about 7 MB inline)."""
    references_max_bytes: int = 14 * 1024 * 1024
    """What all references of one request may weigh: under 20 MB once base64-encoded."""
    _public_files: PublicImageFiles | None = attrs.field(default=None, alias="public_files")
    _background: BackgroundWork = attrs.field(factory=BackgroundWork, alias="background")
    _availability: ModelAvailability | None = attrs.field(default=None, alias="availability")
    """What the last check of the backend's models list found (``None``: no check)."""
    _budgets: Budgets = attrs.field(factory=Budgets, alias="budgets")
    """The configured spending limits (none by default)."""
    _limits: CallLimits = attrs.field(factory=CallLimits, alias="limits")
    """How many images one person may have made a minute and at once, and the server."""
    _upload_store: UploadStore | None = attrs.field(default=None, alias="uploads")
    """Where uploaded photos are kept (``None``: uploads are switched off)."""
    upload_max_bytes: int = DEFAULT_MAX_BYTES
    uploads_per_person: int = DEFAULT_PER_PERSON
    _uploads: Uploads = attrs.field(
        init=False,
        repr=False,
        default=attrs.Factory(lambda self: self._new_uploads(), takes_self=True),
    )
    """The rules of uploaded photos (``uploads.py``), which the use cases below delegate to."""
    _gate: Gate = attrs.field(
        init=False,
        repr=False,
        default=attrs.Factory(lambda self: self._new_gate(), takes_self=True),
    )
    """Admission: the one home of the budget, rate and concurrency rules (``limits``)."""

    def _new_uploads(self) -> Uploads:
        return Uploads(
            store=self._upload_store,
            codec=self._codec,
            clock=self._clock,
            ids=self._ids,
            max_bytes=self.upload_max_bytes,
            per_person=self.uploads_per_person,
            thumbnail_max_side=self.thumbnail_max_side,
        )

    def _new_gate(self) -> Gate:
        return Gate(
            budgets=self._budgets,
            limits=self._limits,
            catalog=self._catalog,
            metadata=self._metadata,
            clock=self._clock,
        )

    # --- decisions that touch no storage: plain methods ---------------------------------

    def offered_models(self) -> tuple[ModelSpec, ...]:
        """The models a person may pick, in catalog order (the picker, the tool text)."""
        return tuple(self._catalog)

    def today(self) -> date:
        """Today's UTC date, the right edge of the spend chart."""
        return self._clock.now().date()

    def may_generate(self, identity: Identity | None) -> bool:
        """Whether ``identity`` may generate (and so use the dashboard at all)."""
        return self._policy.may_generate(identity)

    def is_admin(self, identity: Identity | None) -> bool:
        """Whether ``identity`` sees everyone's usage and galleries."""
        return self._policy.is_admin(identity)

    @property
    def access_is_open(self) -> bool:
        """True when every check is off (local development): no login is consulted."""
        return self._policy.open

    # --- use cases ----------------------------------------------------------------------

    async def default_model_for(self, email: str | None) -> ModelSpec:
        """The person's chosen default, or the catalog default."""
        return await asyncio.to_thread(self._default_model_for, email)

    async def choose_model(self, email: str | None, requested: str | None) -> ModelSpec:
        """Explicitly requested model, else the person's default, else the catalog default."""
        return await asyncio.to_thread(self._choose_model, email, requested)

    def _default_model_for(self, email: str | None) -> ModelSpec:
        """The person's chosen default (any spelling of their email), or the catalog default."""
        alias = self._prefs.get_default_model(owner_key(email)) if email else None
        spec = self._catalog.find(alias) if alias else None
        return spec or self._catalog.default

    def _choose_model(self, email: str | None, requested: str | None) -> ModelSpec:
        if requested:
            return self._catalog.resolve(requested)
        return self._default_model_for(email)

    @overload
    async def generate(
        self, identity: Identity | None, request: GenerationRequest
    ) -> GenerationResult: ...

    @overload
    async def generate(
        self, identity: Identity | None, request: GenerationRequest, *, wait_seconds: float
    ) -> GenerationResult | PendingGeneration: ...

    async def generate(
        self,
        identity: Identity | None,
        request: GenerationRequest,
        *,
        wait_seconds: float | None = None,
    ) -> GenerationResult | PendingGeneration:
        """One image (``count`` 1): ``generate_images`` with its one outcome, or its error."""
        if request.count != 1:
            raise InvalidRequest(
                f"generate makes one image; use generate_images for {request.count}."
            )
        batch = await self.generate_images(identity, request, wait_seconds=wait_seconds)
        outcome = batch.outcomes[0]
        if isinstance(outcome, FailedImage):  # pragma: no cover - raised by generate_images
            raise outcome.error
        return outcome

    async def generate_images(
        self,
        identity: Identity | None,
        request: GenerationRequest,
        *,
        wait_seconds: float | None = None,
        on_settled: Callable[[ImageOutcome], Awaitable[None]] | None = None,
    ) -> GenerationBatch:
        """Check, record each image as rendering, then render them detached from the caller.

        ``request.count`` images are made by as many independent backend calls, run at
        once, each with its own id, record, processing and cost. Each record is written
        before its paid call is sent, and each call runs as background work the caller
        only waits for: cancelling the caller (a client that went away) never cancels
        it, and its result is stored and its cost recorded whatever happens. After
        ``wait_seconds`` (from the start of this call) an image not done yet is a
        ``PendingGeneration``: where it will appear. ``on_settled`` is awaited as each
        image settles while the caller waits.

        A refusal while the caller waits keeps nothing; a failure that may have been
        billed (timeout, broken connection, an image that could not be stored) is
        recorded as ``FAILED`` with its estimated cost. Either is a ``FailedImage`` beside
        the images that came; when every image failed, the first error is raised.
        """
        started = time.monotonic()
        if not self._policy.may_generate(identity):
            raise not_allowed(identity)
        email = _owner_email(identity)
        admin = self._policy.is_admin(identity)
        spec, references = await asyncio.to_thread(self._prepare, email, request, admin)
        backend_request = BackendRequest(
            model_id=spec.model_id,
            prompt=request.prompt,
            image_size=request.image_size,
            aspect_ratio=request.aspect_ratio,
            references=references,
            thinking_level=request.thinking,
            search_grounding=request.search_grounding,
        )
        # Admitted, or refused with the reason before anything is recorded or sent.
        admission = await self._admit(email, spec, request, admin=admin)
        # Images beyond the places the request holds wait for its own earlier ones.
        turns = asyncio.Semaphore(admission.places)
        waiting: dict[asyncio.Future[GenerationResult], tuple[int, Generation, _Waiter]] = {}
        for index in range(request.count):
            pending = Generation(
                id=self._ids.new_id(),
                email=email,
                prompt=request.prompt,
                model_alias=spec.alias,
                model_id=spec.model_id,
                image_size=request.image_size,
                aspect_ratio=request.aspect_ratio,
                created_at=self._clock.now(),
                cost=spec.price(request.image_size),
                estimate=spec.price(request.image_size),
                reference_ids=tuple(r.id for r in references),
                reference_uploads=tuple(r.id for r in references if r.uploaded),
                backend=self._backend.name,
                status=GenerationStatus.RENDERING,
                thinking_level=request.thinking,
                search_grounding=request.search_grounding,
            )
            waiter = _Waiter()
            render = self._render(pending, backend_request, waiter, spec, admission, turns)
            waiting[self._background.start(render)] = (index, pending, waiter)
        outcomes: dict[int, ImageOutcome] = {}
        unsettled = set(waiting)
        try:
            while unsettled:
                remaining = None
                if wait_seconds is not None:
                    remaining = max(0.0, wait_seconds - (time.monotonic() - started))
                # asyncio.wait neither cancels the work on timeout nor when the caller is.
                settled, unsettled = await asyncio.wait(
                    unsettled, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
                )
                if not settled:
                    break
                for work in settled:
                    index, pending, waiter = waiting[work]
                    outcomes[index] = _settled(work, waiter)
                    if on_settled is not None:
                        await on_settled(outcomes[index])
        finally:
            for work in unsettled:
                waiting[work][2].left = True
        usual = spec.usual_seconds(request.image_size) - (time.monotonic() - started)
        for work in unsettled:
            index, pending, waiter = waiting[work]
            outcomes[index] = _unsettled(work, waiter, pending, usual)
        done = tuple(outcomes[i] for i in range(request.count))
        standing = None
        if admission.budgeted:  # a budget applies: say where it stands now
            # Settled images at what they cost; those still rendering at what they reserve.
            this_request = sum(
                (
                    admission.each
                    if isinstance(o, PendingGeneration)
                    else o.generation.cost.usd
                    if o.generation
                    else Decimal(0)
                    for o in done
                ),
                Decimal(0),
            )
            standing = await asyncio.to_thread(
                self._gate.standing, email, admin=admin, this_request=this_request
            )
        batch = GenerationBatch(done, standing=standing)
        if all(isinstance(o, FailedImage) for o in batch.outcomes):
            first = batch.outcomes[0]
            assert isinstance(first, FailedImage)
            raise first.error
        return batch

    async def _admit(
        self, email: str, spec: ModelSpec, request: GenerationRequest, *, admin: bool
    ) -> Admission:
        """Admission in a worker thread; a caller cancelled meanwhile leaves nothing held.

        The thread cannot be stopped, so its answer is awaited shielded: when the caller
        is cancelled first, whatever it admitted is abandoned as soon as it comes.
        """
        admitting = asyncio.ensure_future(
            asyncio.to_thread(self._gate.admit, email, spec, request, admin=admin)
        )
        try:
            return await asyncio.shield(admitting)
        except asyncio.CancelledError:
            admitting.add_done_callback(self._abandon)
            raise

    def _abandon(self, admitting: asyncio.Future[Admission]) -> None:
        if not admitting.cancelled() and admitting.exception() is None:
            self._gate.abandon(admitting.result())

    async def _render(
        self,
        pending: Generation,
        request: BackendRequest,
        waiter: _Waiter,
        spec: ModelSpec,
        admission: Admission,
        turns: asyncio.Semaphore,
    ) -> GenerationResult:
        """Record it as rendering, wait for the request's turn, then make and settle it.

        The pending record is written here, inside the detached work, so a caller
        cancelled at any moment never leaves a record without its call (or the reverse).
        However it ends, the image's place is given back (``Gate.finished``); its
        reservation is given back with the record that settles it, or when nothing is
        owed.
        """
        try:
            try:
                await asyncio.to_thread(self._metadata.add, pending)
            except BaseException:
                self._gate.release(admission)  # nothing was sent
                raise
            try:
                await turns.acquire()
            except asyncio.CancelledError:
                # Cancelled (at shutdown) while waiting for its turn: never sent, so not owed.
                with contextlib.suppress(StorageError):
                    self._metadata.remove(pending.id)
                self._gate.release(admission)
                raise
            try:
                return await self._make(pending, request, waiter, spec, admission)
            finally:
                turns.release()
        finally:
            self._gate.finished(admission)

    async def _make(
        self,
        pending: Generation,
        request: BackendRequest,
        waiter: _Waiter,
        spec: ModelSpec,
        admission: Admission,
    ) -> GenerationResult:
        """Call the backend, store the PNG, settle the record (and the reservation with it).

        The cost recorded is the true one, from the answer's token counts at the model's
        prices per token (``pricing.cost_from_usage``), with the list-price estimate kept
        beside it; without usage the estimate is the cost. A grounded image's search
        queries are priced at the model's ``search_query_price`` each and added to both.
        """
        image: BackendImage | None = None
        processing: ImageProcessing | None = None
        stored = False
        try:
            # Decoding starts while the image still downloads, when the backend streams it.
            processing = self._codec.begin(self.preview_max_side, self.thumbnail_max_side)
            image = await self._ask_backend(request, processing)
            processed = await self._process_and_store(pending.id, image, processing)
            stored = True
            grounding = _priced(image.grounding, spec.search_query_price)
            estimate = pending.cost + grounding.cost if grounding else pending.cost
            queries = len(grounding.queries) if grounding else 0
            true_cost = cost_from_usage(spec, image.token_usage, queries)
            done = _with_cost(
                attrs.evolve(
                    pending,
                    status=GenerationStatus.DONE,
                    token_usage=image.token_usage,
                    width=processed.width,
                    height=processed.height,
                    grounding=grounding,
                    estimate=estimate,
                ),
                true_cost,
            )
            await asyncio.to_thread(self._settle, done, processed, admission)
        except Exception as exc:
            if stored:  # the PNG is kept; the record stays rendering until start-up settles it
                raise  # and its reservation stays counted: it was paid for
            error = exc if isinstance(exc, ImageMcpError) else None
            # Billed once an image arrived, or when the backend says it may have been.
            billed = image is not None or (error is not None and _may_be_billed(error))
            if billed or waiter.left:
                usage = image.token_usage if image else _usage_of(error)
                true_cost = cost_from_usage(spec, usage, image_came=image is not None)
                failed = attrs.evolve(
                    pending,
                    status=GenerationStatus.FAILED,
                    failure=error.message if error else "An unexpected error stopped it.",
                    token_usage=usage,
                    cost=pending.cost if billed else CostEstimate.zero(),
                    # Not billed (a refusal after the caller left): nothing to estimate either.
                    estimate=pending.estimate if billed else CostEstimate.zero(),
                )
                if billed:
                    failed = _with_cost(failed, true_cost)
                waiter.recorded = failed
                # Unwritten, the next start-up settles it, and the reservation stays meanwhile.
                with contextlib.suppress(StorageError):
                    settle = self._gate.settle
                    await asyncio.to_thread(settle, admission, failed, self._metadata.replace)
                raise
            waiter.refused = error
            with contextlib.suppress(StorageError):
                await asyncio.to_thread(self._metadata.remove, pending.id)
            await asyncio.to_thread(self._gate.release, admission)  # refused: nothing owed
            raise
        finally:
            if processing is not None:
                # Letting go must not hide what happened above (an image already stored).
                with contextlib.suppress(Exception):
                    processing.close()
        return GenerationResult(done, processed.preview, note=image.text)

    async def _ask_backend(
        self, request: BackendRequest, processing: ImageProcessing
    ) -> BackendImage:
        """The backend's image, streamed into ``processing`` when the backend can."""
        if isinstance(self._backend, StreamingImageBackend):
            return await self._backend.generate_streaming(request, processing)
        return await self._backend.generate(request)

    async def _process_and_store(
        self, image_id: uuid.UUID, image: BackendImage, processing: ImageProcessing
    ) -> ProcessedImage:
        """Finish decoding the image and store its PNG at the same time; return the result.

        A PNG as the backend sent it is usually stored as it is, so it is written in one
        worker thread while another finishes decoding it: on two cores the write (about
        100 ms for a 20 MB 4K PNG, fsync included) hides behind the decode. An image that
        turns out unusable is removed again; one that had to be converted is stored
        converted.
        """
        decoding = asyncio.to_thread(self._process, image, processing)
        if not image.data.startswith(PNG_SIGNATURE):
            processed = await decoding
            await asyncio.to_thread(self._images.put, image_id, processed.png, None)
            return processed
        writing = asyncio.to_thread(self._images.put, image_id, image.data, None)
        decoded, written = await asyncio.gather(decoding, writing, return_exceptions=True)
        if isinstance(decoded, BaseException):
            if not isinstance(written, BaseException):
                with contextlib.suppress(StorageError):
                    await asyncio.to_thread(self._images.delete, image_id)
            raise decoded
        if isinstance(written, BaseException):
            raise written
        if decoded.png != image.data:  # e.g. bytes after IEND were cut: store the clean PNG
            await asyncio.to_thread(self._images.put, image_id, decoded.png, None)
        return decoded

    def _settle(self, done: Generation, processed: ProcessedImage, admission: Admission) -> None:
        """The thumbnail (best effort: the gallery remakes a missing one), then the record.

        The record is written by the gate, which gives the reservation back with it.
        """
        with contextlib.suppress(StorageError):
            self._images.put_thumbnail(done.id, processed.thumbnail)
        self._gate.settle(admission, done, self._metadata.replace)

    def _prepare(
        self, email: str, request: GenerationRequest, admin: bool = False
    ) -> tuple[ModelSpec, tuple[ReferenceImage, ...]]:
        """The model to use and the references to send, in one worker-thread hop.

        ``email`` and ``admin`` say whose uploaded photos may be used as references.
        """
        spec = self._choose_model(email, request.model)
        problem = _unsupported(spec, request)
        if problem is not None:
            chosen = self._chose(email, request, spec)
            raise _unsupported_error(spec, problem, self._catalog, chosen)
        # Whose default it was is asked only for the refusal's wording (a preferences read).
        _check_controls(spec, request, self._catalog, lambda: self._chose(email, request, spec))
        _check_available(self._availability, spec)
        return spec, self._load_references(request.references, email, admin)

    def _chose(self, email: str, request: GenerationRequest, spec: ModelSpec) -> bool:
        """Whether ``spec`` is the person's own default choice (not named, not the catalog's)."""
        alias = self._prefs.get_default_model(owner_key(email)) if request.model is None else None
        chosen = self._catalog.find(alias) if alias else None
        return chosen is not None and chosen.alias == spec.alias

    def _process(self, image: BackendImage, processing: ImageProcessing) -> ProcessedImage:
        try:
            return processing.finish(image.data)
        except InvalidImage as exc:
            raise BackendError(
                f"The image service returned an unusable image: {exc.message}"
            ) from None

    def _load_references(
        self, wanted: tuple[str, ...], email: str, admin: bool
    ) -> tuple[ReferenceImage, ...]:
        """Each named image (an earlier generation, or the caller's own uploaded photo)
        checked and made to fit its share of what one request may carry."""
        loaded: list[ReferenceImage] = []
        prepared: dict[tuple[bool, uuid.UUID], ReferenceImage] = {}
        # Each reference gets an equal share of what one request may carry.
        budget = min(self.reference_max_bytes, self.references_max_bytes // max(1, len(wanted)))
        for name in wanted:
            uploaded, image_id, label = _reference_id(name)
            if (uploaded, image_id) in prepared:  # the same image twice: prepare it once
                loaded.append(prepared[uploaded, image_id])
                continue
            if uploaded:
                found = self._uploads.image(image_id, email, admin=admin)
                data = found.data if found is not None else None
            else:
                data = self._images.get(image_id)
            if data is None:  # someone else's upload is as absent as an unknown name
                raise ReferenceNotFound(f"Reference image {label} does not exist.")
            try:
                sent = self._codec.prepare_reference(data, budget)
            except InvalidImage as exc:
                raise InvalidImage(f"Reference image {label}: {exc.message}") from None
            prepared[uploaded, image_id] = ReferenceImage(
                image_id, sent.data, sent.mime_type, uploaded=uploaded
            )
            loaded.append(prepared[uploaded, image_id])
        return tuple(loaded)

    async def find_generation(self, viewer: Identity | None, name: str) -> FoundGeneration:
        """One generation again by its file name or id, if the viewer may see it.

        Anyone who may generate may look up their own; admins anyone's. A done image
        comes with its inline preview, a rendering one with the time it usually needs.
        """
        generation = await self.find_generation_record(viewer, name)
        image_id = generation.id
        if generation.status is GenerationStatus.RENDERING:
            return FoundGeneration(generation, expected_seconds=self._expected(generation))
        if generation.status is GenerationStatus.FAILED:
            return FoundGeneration(generation)
        return FoundGeneration(generation, await asyncio.to_thread(self._preview, image_id))

    async def stored_image(
        self, viewer: Identity | None, name: str, max_bytes: int | None = None
    ) -> tuple[Generation, EncodedImage]:
        """A finished generation and its PNG, if the viewer may see it (as ``get_image``).

        For clients that attach an earlier image as an MCP resource. Over ``max_bytes``
        the image comes as a smaller copy made for the purpose (JPEG, or WebP with
        transparency, as for a reference); the stored PNG never changes. A rendering or
        failed generation has no PNG yet: ``ReferenceNotFound`` says which.
        """
        found = await self.find_generation_record(viewer, name)
        if not found.is_done:
            state = "still rendering" if found.status is GenerationStatus.RENDERING else "failed"
            raise ReferenceNotFound(f"{found.file_name} has no image: it {state}.")
        png = await asyncio.to_thread(self._images.get, found.id)
        if png is None:
            raise StorageError(f"The image file {found.file_name} is missing from the data folder.")
        if max_bytes is None or len(png) <= max_bytes:
            return found, EncodedImage(png, "image/png")
        copy = await asyncio.to_thread(self._codec.prepare_reference, png, max_bytes)
        return found, copy

    async def find_generation_record(self, viewer: Identity | None, name: str) -> Generation:
        """One generation's record by file name or id, if the viewer may see it (no preview)."""
        if not self._policy.may_generate(viewer):
            raise not_allowed(viewer)
        image_id = names.parse_image_name(name.strip())
        if image_id is None:
            raise ReferenceNotFound(
                f"{name!r} is not the name of a generation: pass the file name returned by "
                "generate_image, like '<uuid>.png', or its URL."
            )
        generation = await asyncio.to_thread(self._metadata.get, image_id)
        if generation is None:
            raise ReferenceNotFound(f"There is no generation named {image_id}.png.")
        if not self._policy.may_view(viewer, generation.email):
            raise NotAllowed("You can only look up your own images.", NotAllowedReason.NOT_YOURS)
        return generation

    def _preview(self, image_id: uuid.UUID) -> EncodedImage:
        png = self._images.get(image_id)
        if png is None:
            raise StorageError(f"The image file {image_id}.png is missing from the data folder.")
        return self._codec.preview(png, self.preview_max_side)

    def _expected(self, generation: Generation) -> int:
        spec = self._catalog.find(generation.model_alias)
        usual = spec.usual_seconds(generation.image_size) if spec else 30
        elapsed = (self._clock.now() - generation.created_at).total_seconds()
        return max(MIN_EXPECTED_SECONDS, round(usual - elapsed))

    async def reconcile(self) -> ReconcileReport:
        """Settle what an earlier run left rendering (call once at start-up, before serving).

        A stored PNG means the image was paid for and kept: ``DONE`` (its size read from
        the PNG header). No PNG: ``FAILED``, interrupted, at the estimated cost, because
        the request may have been processed and billed.
        """
        return await asyncio.to_thread(self._reconcile)

    def _reconcile(self) -> ReconcileReport:
        done = failed = 0
        for pending in self._metadata.unsettled():
            png = self._images.get(pending.id)
            size = _header_size(png) if png is not None else None
            if size is not None:
                settled = attrs.evolve(
                    pending, status=GenerationStatus.DONE, width=size[0], height=size[1]
                )
                done += 1
            else:
                settled = attrs.evolve(pending, status=GenerationStatus.FAILED, failure=INTERRUPTED)
                failed += 1
            self._metadata.replace(settled)
        if done or failed:  # costs the gate has not seen: it reads the records again
            self._gate.forget_spend()
        return ReconcileReport(done=done, failed=failed)

    async def usage_for(self, viewer: Identity | None) -> UsageReport:
        """Per-user usage the viewer may see: everyone for admins, else their own row."""
        return await asyncio.to_thread(self._metadata.usage, self._policy.visible_emails(viewer))

    async def daily_spend_for(self, viewer: Identity | None, days: int = 30) -> list[DailySpend]:
        """Spend per day over the last ``days`` UTC days, limited to what the viewer may see."""
        if days < 1:
            raise InvalidRequest("The spend chart covers at least one day.")
        since = (self._clock.now() - timedelta(days=days - 1)).date()
        visible = self._policy.visible_emails(viewer)
        return await asyncio.to_thread(self._metadata.daily_spend, since, visible)

    async def visible_users(self, viewer: Identity | None) -> list[str]:
        """Emails whose galleries the viewer may open."""
        visible = self._policy.visible_emails(viewer)
        if visible is None:
            return await asyncio.to_thread(self._metadata.users)
        return sorted(visible)

    async def gallery(
        self,
        viewer: Identity | None,
        owner: str,
        offset: int = 0,
        limit: int = 24,
        containing: str | None = None,
    ) -> GalleryPage:
        """A page of ``owner``'s images, newest first, if the viewer may see them.

        ``containing`` keeps only the images whose prompt holds each of its words.
        """
        if not self._policy.may_view(viewer, owner):
            raise NotAllowed("You can only see your own images.", NotAllowedReason.NOT_YOURS)
        if offset < 0 or not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidRequest(f"Pages start at 0 and hold 1 to {MAX_PAGE_SIZE} images.")
        words = " ".join(containing.split()) if containing else None
        return await asyncio.to_thread(
            self._metadata.page_for_user, owner_key(owner), offset, limit, words or None
        )

    async def list_images(
        self,
        viewer: Identity | None,
        owner: str | None = None,
        *,
        offset: int = 0,
        limit: int = 20,
        containing: str | None = None,
    ) -> GalleryPage:
        """The viewer's own finished images (or ``owner``'s, for admins), newest first.

        Only people who may generate may list; naming someone else is refused unless the
        viewer is an admin, as in the dashboard.
        """
        if not self._policy.may_generate(viewer):
            raise not_allowed(viewer)
        whose = owner.strip() if owner and owner.strip() else _owner_email(viewer)
        return await self.gallery(viewer, whose, offset, limit, containing)

    async def thumbnail(self, viewer: Identity | None, image_id: uuid.UUID) -> EncodedImage | None:
        """The gallery thumbnail, made now if the image predates thumbnails."""
        return await asyncio.to_thread(self._thumbnail, viewer, image_id)

    def _thumbnail(self, viewer: Identity | None, image_id: uuid.UUID) -> EncodedImage | None:
        generation = self._metadata.get(image_id)
        if generation is None or not self._policy.may_view(viewer, generation.email):
            return None
        stored = self._images.get_thumbnail(image_id)
        if stored is not None:
            return stored
        png = self._images.get(image_id)
        if png is None:
            return None
        made = self._codec.thumbnail(png, self.thumbnail_max_side)
        with contextlib.suppress(StorageError):  # serving it matters more than caching it
            self._images.put_thumbnail(image_id, made)
        return made

    # --- uploaded photos: the rules live in uploads.py ------------------------------------

    @property
    def accepts_uploads(self) -> bool:
        """Whether people may upload photos of their own to use as references."""
        return self._uploads.enabled

    def check_upload_size(self, size: int) -> None:
        """Refuse a photo of ``size`` bytes over the cap, before a driver decodes anything."""
        self._uploads.check_size(size)

    async def upload_photo(
        self, identity: Identity | None, data: bytes, file_name: str | None = None
    ) -> Upload:
        """Keep a photo of the caller's as a reference only they (and admins) may use.

        Refused, cheapest first, when the caller may not generate, the photo is over
        the size cap, they keep as many as they may, or it is not a usable image; a
        refusal keeps nothing. Decoding runs in a worker thread.
        """
        if not self._policy.may_generate(identity):
            raise not_allowed(identity)
        self._uploads.check_size(len(data))
        return await asyncio.to_thread(self._uploads.add, _owner_email(identity), data, file_name)

    async def uploads_of(self, viewer: Identity | None, owner: str) -> list[Upload]:
        """``owner``'s uploaded photos, newest first, for the owner or an admin."""
        if not self._policy.may_view(viewer, owner):
            raise NotAllowed("You can only see your own photos.", NotAllowedReason.NOT_YOURS)
        return await asyncio.to_thread(self._uploads.of, owner_key(owner))

    async def upload_thumbnail(self, viewer: Identity | None, name: str) -> EncodedImage | None:
        """The thumbnail of the upload ``name``, or ``None`` unless the viewer owns it or
        is an admin (to anyone else it does not exist)."""
        return await self._uploaded(viewer, name, self._uploads.thumbnail)

    async def uploaded_image(self, viewer: Identity | None, name: str) -> EncodedImage | None:
        """The kept photo ``name`` (normalised), for its owner or an admin only."""
        return await self._uploaded(viewer, name, self._uploads.image)

    async def delete_upload(self, viewer: Identity | None, name: str) -> Upload | None:
        """Delete the upload ``name`` for its owner or an admin; ``None`` for anyone else
        (nothing happens, and nobody learns whether it existed)."""
        return await self._uploaded(viewer, name, self._uploads.remove)

    async def _uploaded(
        self, viewer: Identity | None, name: str, use: Callable[..., _T | None]
    ) -> _T | None:
        """``use`` of the upload ``name`` as the viewer (owner, or admin); else ``None``."""
        upload_id = names.parse_upload_name(name)
        if upload_id is None or not self._policy.may_generate(viewer):
            return None
        email, admin = _owner_email(viewer), self._policy.is_admin(viewer)
        return await asyncio.to_thread(use, upload_id, email, admin=admin)

    async def open_public_image(self, name: str) -> OpenedFile | None:
        """The public PNG ``name`` (``{uuid}.png``) opened for streaming, or ``None``.

        Public on purpose: the random uuid4 is the access control. Only regular files
        reached without a symlink are opened; the caller closes the descriptor.
        """
        if self._public_files is None:
            return None
        return await asyncio.to_thread(self._public_files.open_png, name)

    async def set_default_model(self, identity: Identity | None, name: str) -> ModelSpec:
        """Remember the person's default model, given any accepted spelling of it."""
        if not self._policy.may_generate(identity):
            raise not_allowed(identity)
        spec = self._catalog.resolve(name)
        await asyncio.to_thread(self._prefs.set_default_model, _owner_email(identity), spec.alias)
        return spec

    # --- money: spend of a period, budgets, the cost export -------------------------------

    async def spend_overview(self, viewer: Identity | None, period: Period) -> SpendOverview:
        """The period's spend the viewer may see, each person against their budget.

        Admins see everyone (and, in a month view, the server against its monthly
        budget); anyone else their own row (in a month view with a budget, shown even
        before they spent anything).
        Budgets are monthly, so only a calendar month compares spend with them.
        """
        visible = self._policy.visible_emails(viewer)
        rows = await asyncio.to_thread(self._metadata.spend, visible, period)
        month = is_calendar_month(period)
        if visible is not None and month:  # a budget shows before anything is spent
            missing = sorted(set(visible) - {r.email for r in rows})
            zero = CostEstimate.zero()
            rows += [
                PersonSpend(e, 0, zero, zero)
                for e in missing
                if self._budgets.monthly_for(e) is not None
            ]
        standings = tuple(
            PersonStanding(row, self._budget_use(row.cost, self._budgets.monthly_for(row.email)))
            if month
            else PersonStanding(row, None)
            for row in rows
        )
        server = None
        if month and visible is None and self._budgets.total_monthly is not None:
            spent = sum((r.cost for r in rows), CostEstimate.zero())
            server = BudgetUse(spent, self._budgets.total_monthly)
        return SpendOverview(period, standings, server)

    @staticmethod
    def _budget_use(spent: CostEstimate, limit: CostEstimate | None) -> BudgetUse | None:
        return BudgetUse(spent, limit) if limit is not None else None

    def cost_rows_for(self, viewer: Identity | None, period: Period) -> AsyncIterator[CostRow]:
        """The period's settled records the viewer may see, oldest first, streamed.

        Admins get everyone's, anyone else only their own. Rows are read in batches in a
        worker thread as the caller consumes them.
        """
        visible = self._policy.visible_emails(viewer)
        return _in_batches(self._metadata.cost_rows(visible, period))

    async def index_rebuilding(self) -> RebuildProgress | None:
        """How far a rebuild of the records' index is while one runs (figures are partial)."""
        return await asyncio.to_thread(self._metadata.rebuilding)


_BATCH = 500


_FIRST_BATCH = 50


def _take(rows: Iterator[CostRow], count: int) -> list[CostRow]:
    return list(itertools.islice(rows, count))


async def _in_batches(rows: Iterator[CostRow]) -> AsyncIterator[CostRow]:
    """``rows`` consumed in batches in a worker thread, so the loop never blocks.

    The first batch is small, so the first rows go out soon.
    """
    size = _FIRST_BATCH
    while True:
        batch = await asyncio.to_thread(_take, rows, size)
        for row in batch:
            yield row
        if len(batch) < size:
            return
        size = _BATCH


def _settled(work: asyncio.Future[GenerationResult], waiter: _Waiter) -> ImageOutcome:
    """What a finished render came to: its result, or why it failed and what was kept."""
    error = work.exception()
    if error is None:
        return work.result()
    message = error.message if isinstance(error, ImageMcpError) else UNEXPECTED
    if not isinstance(error, Exception):  # pragma: no cover - a BaseException escapes
        raise error
    return FailedImage(error, message, waiter.recorded)


def _unsettled(
    work: asyncio.Future[GenerationResult], waiter: _Waiter, pending: Generation, usual: float
) -> ImageOutcome:
    """An image the wait ended before: rendering on (about ``usual`` s more), or just settled."""
    if work.done():  # finished since the wait ended
        return _settled(work, waiter)
    if waiter.refused is not None:  # refused just now, and being forgotten
        return FailedImage(waiter.refused, waiter.refused.message)
    return PendingGeneration(pending, max(MIN_EXPECTED_SECONDS, round(usual)))


def _priced(grounding: Grounding | None, query_price: CostEstimate) -> Grounding | None:
    """``grounding`` with its queries priced: each search query costs ``query_price``."""
    if grounding is None:
        return None
    cost = CostEstimate(query_price.usd * len(grounding.queries))
    return attrs.evolve(grounding, cost=cost)


def _with_cost(generation: Generation, true_cost: CostEstimate | None) -> Generation:
    """The record costing ``true_cost`` when it is known; else its estimate stays the cost."""
    if true_cost is None:
        estimate = generation.list_price_estimate
        return attrs.evolve(generation, cost=estimate, cost_basis=CostBasis.LIST_PRICE)
    return attrs.evolve(generation, cost=true_cost, cost_basis=CostBasis.USAGE)


def _usage_of(error: ImageMcpError | None) -> TokenUsage | None:
    """The token counts a failed answer still reported (a refusal in words has some)."""
    return error.token_usage if isinstance(error, BackendError) else None


def _may_be_billed(error: ImageMcpError) -> bool:
    return isinstance(error, BackendError) and error.may_be_billed


def _header_size(png: bytes) -> tuple[int, int] | None:
    try:
        return png_size(png)
    except InvalidImage:
        return None


def _reference_id(name: str) -> tuple[bool, uuid.UUID, str]:
    """Whether ``name`` is an uploaded photo's, its id, and how refusals name it."""
    text = name.strip()
    upload_id = names.parse_upload_name(text)
    if upload_id is not None:
        return True, upload_id, text
    image_id = names.parse_image_name(text)
    if image_id is None:
        raise ReferenceNotFound(
            f"Reference image {name!r} is not the name of an earlier generation or of an "
            "uploaded photo: pass the file name returned by generate_image, like "
            "'<uuid>.png', or its URL, or an upload's name, like 'upload-<uuid>.jpg'."
        )
    return False, image_id, f"{image_id}.png"


def _owner_email(identity: Identity | None) -> str:
    if identity is None:
        return names.LOCAL_OWNER
    return owner_key(identity.email)


def not_allowed(identity: Identity | None) -> NotAllowed:
    """Why ``identity`` may not generate, in domain words, with the reason and the email."""
    if identity is None:
        return NotAllowed(
            "Sign in with an account that has an email address to generate images.",
            NotAllowedReason.NOT_SIGNED_IN,
        )
    if not identity.email_verified:
        return NotAllowed(
            f"The account {identity.email} has no verified email address.",
            NotAllowedReason.UNVERIFIED,
            identity.email,
        )
    return NotAllowed(
        f"{identity.email} is signed in but not on this server's allow-list.",
        NotAllowedReason.NOT_LISTED,
        identity.email,
    )


def _unsupported(
    spec: ModelSpec, request: GenerationRequest
) -> AspectRatio | ImageSize | int | None:
    """What of ``request`` the model cannot do: a ratio, a size, a count of references."""
    if request.aspect_ratio is not None and request.aspect_ratio not in spec.aspect_ratios:
        return request.aspect_ratio
    if request.image_size not in spec.sizes:
        return request.image_size
    if len(request.references) > spec.max_references:
        return len(request.references)
    return None


def _unsupported_error(
    spec: ModelSpec,
    problem: AspectRatio | ImageSize | int,
    catalog: ModelCatalog,
    chosen_default: bool,
) -> UnsupportedByModel:
    """Says what the model takes instead, which other model takes it, and whose choice it was."""
    if isinstance(problem, AspectRatio):
        asked = f"aspect ratio {problem.value}"
        takes = "it supports: " + ", ".join(r.value for r in spec.ratios_in_order)
        others = catalog.offering(ratio=problem)
    elif isinstance(problem, ImageSize):
        asked = f"image size {problem.value}"
        takes = "use " + ", ".join(s.value for s in spec.sizes_in_order)
        others = catalog.offering(size=problem)
    else:
        asked = f"{problem} reference images"
        takes = f"it takes at most {spec.max_references}"
        others = tuple(m for m in catalog if m.max_references >= problem)
    whose = "your default model " if chosen_default else ""
    others = tuple(m for m in others if m.alias != spec.alias)
    can = ""
    if others:
        names = " or ".join(f"'{m.alias}' ({m.display_name})" for m in others)
        change = ", or change your default model" if chosen_default else ""
        can = f" ({names} can: pass model {others[0].alias!r}{change})"
    message = f"{whose}{spec.alias} ({spec.model_id}) does not support {asked}{can}; {takes}."
    return UnsupportedByModel(message[0].upper() + message[1:], chosen_default=chosen_default)


def _check_controls(
    spec: ModelSpec,
    request: GenerationRequest,
    catalog: ModelCatalog,
    was_chosen: Callable[[], bool],
) -> None:
    """A thinking level the model offers and grounding only where the model has it.

    ``was_chosen`` says whether the model is the person's own default; it is called only
    when something is refused.
    """
    level = request.thinking
    if (level is None or level in spec.thinking_levels) and (
        not request.search_grounding or spec.search_grounding
    ):
        return
    chosen_default = was_chosen()
    whose = "your default model " if chosen_default else ""
    change = ", or change your default model" if chosen_default else ""
    named = f"{whose}'{spec.alias}' ({spec.display_name})"
    named = named[0].upper() + named[1:]
    if level is not None and level not in spec.thinking_levels:
        thinkers = [m for m in catalog if m.thinking_levels and m.alias != spec.alias]
        others = "; ".join(f"'{m.alias}' takes {', '.join(m.thinking_levels)}" for m in thinkers)
        elsewhere = f" ({others}{change})" if others else ""
        if spec.thinking_levels:
            message = (
                f"Thinking level {level!r} is not offered by {named}: it takes "
                f"{', '.join(spec.thinking_levels)}{elsewhere}. Leave thinking out for the "
                "model's own."
            )
        else:
            message = (
                f"{named} takes no thinking level{elsewhere}. Leave thinking out, or pass "
                "a model that takes one."
            )
        raise UnsupportedByModel(message, chosen_default=chosen_default)
    if request.search_grounding and not spec.search_grounding:
        groundable = [m.alias for m in catalog if m.search_grounding]
        can = " or ".join(f"'{a}'" for a in groundable)
        hint = f" ({can} can: pass model {groundable[0]!r}{change})" if groundable else ""
        raise UnsupportedByModel(
            f"{named} cannot ground images in Google Search results{hint}; leave "
            "search_grounding out to generate without it.",
            chosen_default=chosen_default,
        )


def _check_available(availability: ModelAvailability | None, spec: ModelSpec) -> None:
    """Fail before any call when the last models-list check found the model gone."""
    hint = availability.missing(spec.model_id) if availability is not None else None
    if hint is not None:
        raise BackendMisconfigured(hint)
