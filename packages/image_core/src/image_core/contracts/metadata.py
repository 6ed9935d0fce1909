"""The MetadataRepository contract: records, pages, exact totals and daily spend."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from image_core.budgets import Period
from image_core.contracts.samples import (
    EXAMPLES,
    GENERATION_LISTS,
    NOON,
    AdapterFactory,
    make_generation,
)
from image_core.domain import (
    CostBasis,
    CostEstimate,
    DailySpend,
    Generation,
    GenerationStatus,
    UserUsage,
)
from image_core.errors import StorageError
from image_core.ledger import PROMPT_CHARS, CostRow, PersonSpend, short_prompt
from image_core.ports import MetadataRepository
from image_core.testing import newest_first, summarise_daily, summarise_usage


class MetadataRepositoryContract:
    """Subclass as ``Test...`` and provide the ``metadata_repo_factory`` fixture.

    The fixture returns a callable that opens one fresh, empty ``MetadataRepository`` in a context
    (an ``AdapterFactory``); every test, and every Hypothesis example, gets its own.
    """

    @pytest.fixture
    def metadata_repo(
        self, metadata_repo_factory: AdapterFactory[MetadataRepository]
    ) -> Iterator[MetadataRepository]:
        """One fresh adapter for one test."""
        with metadata_repo_factory() as adapter:
            yield adapter

    def test_a_recorded_generation_comes_back_equal(
        self, metadata_repo: MetadataRepository
    ) -> None:
        """add then get returns an equal record, every field included."""
        generation = make_generation(prompt='Ein Fuchs im Schnee — "nachts" 🦊')
        metadata_repo.add(generation)
        assert metadata_repo.get(generation.id) == generation

    def test_an_unknown_id_is_none(self, metadata_repo: MetadataRepository) -> None:
        """get of an id never added is None."""
        assert metadata_repo.get(uuid.uuid4()) is None

    def test_adding_the_same_id_twice_is_refused_and_keeps_the_first(
        self,
        metadata_repo: MetadataRepository,
    ) -> None:
        """A duplicate add is a StorageError; the first record stays as it was."""
        first = make_generation(cost="0.067")
        metadata_repo.add(first)
        with pytest.raises(StorageError, match="already recorded"):
            metadata_repo.add(make_generation(cost="0.24", generation_id=first.id))
        assert metadata_repo.get(first.id) == first
        assert metadata_repo.usage().total_cost == CostEstimate(Decimal("0.067"))

    def test_a_pending_record_is_replaced_by_its_settled_one(
        self,
        metadata_repo: MetadataRepository,
    ) -> None:
        """replace overwrites the record of a known id; unsettled lists the rendering ones."""
        pending = make_generation(status=GenerationStatus.RENDERING)
        other = make_generation(status=GenerationStatus.RENDERING)
        metadata_repo.add(pending)
        metadata_repo.add(other)
        assert sorted(g.id for g in metadata_repo.unsettled()) == sorted([pending.id, other.id])
        done = attrs.evolve(pending, status=GenerationStatus.DONE)
        metadata_repo.replace(done)
        assert metadata_repo.get(pending.id) == done
        assert metadata_repo.unsettled() == [other]

    def test_replacing_an_unknown_id_is_refused(self, metadata_repo: MetadataRepository) -> None:
        """replace is for records already written; it never creates one."""
        with pytest.raises(StorageError):
            metadata_repo.replace(make_generation())
        assert metadata_repo.users() == []

    def test_a_removed_record_is_gone_from_every_query(
        self, metadata_repo: MetadataRepository
    ) -> None:
        """remove forgets a pending record that was refused while its caller waited."""
        pending = make_generation(status=GenerationStatus.RENDERING)
        metadata_repo.add(pending)
        metadata_repo.remove(pending.id)
        assert metadata_repo.get(pending.id) is None
        assert metadata_repo.unsettled() == []
        metadata_repo.remove(pending.id)  # twice is harmless

    def test_galleries_hold_done_images_and_costs_count_settled_records(
        self,
        metadata_repo: MetadataRepository,
    ) -> None:
        """Rendering counts nothing yet; failed counts its cost but is no image."""
        ann = "ann@example.com"
        done = make_generation(ann, cost="0.1")
        failed = make_generation(ann, cost="0.24", status=GenerationStatus.FAILED)
        refused = make_generation(ann, cost="0", status=GenerationStatus.FAILED)
        rendering = make_generation(ann, cost="0.5", status=GenerationStatus.RENDERING)
        for generation in (done, failed, refused, rendering):
            metadata_repo.add(generation)
        page = metadata_repo.page_for_user(ann, 0, 10)
        assert (page.items, page.total) == ((done,), 1)
        assert metadata_repo.usage().rows == (UserUsage(ann, 1, CostEstimate(Decimal("0.34"))),)
        assert metadata_repo.daily_spend(NOON.date()) == [
            DailySpend(NOON.date().isoformat(), ann, 1, CostEstimate(Decimal("0.34")))
        ]
        metadata_repo.replace(attrs.evolve(rendering, status=GenerationStatus.DONE))
        assert metadata_repo.usage().rows == (UserUsage(ann, 2, CostEstimate(Decimal("0.84"))),)
        assert metadata_repo.page_for_user(ann, 0, 10).total == 2

    def test_an_empty_repository_answers_every_query_with_nothing(
        self,
        metadata_repo: MetadataRepository,
    ) -> None:
        """No records: empty page, no usage, no daily spend, no users."""
        page = metadata_repo.page_for_user("ann@example.com", 0, 10)
        assert (page.items, page.total, page.has_next) == ((), 0, False)
        assert metadata_repo.usage().rows == ()
        assert metadata_repo.daily_spend(date(2000, 1, 1)) == []
        assert metadata_repo.users() == []

    def test_pages_run_newest_first_with_totals_and_has_next(
        self,
        metadata_repo: MetadataRepository,
    ) -> None:
        """Five records in pages of two: 2, 2, 1, newest first, has_next until the last."""
        made = [make_generation(at=NOON + timedelta(minutes=i)) for i in range(5)]
        for generation in made:
            metadata_repo.add(generation)
        pages = [metadata_repo.page_for_user("ann@example.com", offset, 2) for offset in (0, 2, 4)]
        assert [p.items for p in pages] == [tuple(made[4:2:-1]), tuple(made[2:0:-1]), (made[0],)]
        assert [p.total for p in pages] == [5, 5, 5]
        assert [p.has_next for p in pages] == [True, True, False]
        beyond = metadata_repo.page_for_user("ann@example.com", 10, 2)
        assert (beyond.items, beyond.total, beyond.has_next) == ((), 5, False)

    def test_records_made_at_the_same_instant_are_ordered_by_id(
        self,
        metadata_repo: MetadataRepository,
    ) -> None:
        """Ties in time are broken by id (descending), so the order is total and stable."""
        ids = sorted((uuid.uuid4() for _ in range(4)), key=str)
        for generation_id in ids:
            metadata_repo.add(make_generation(generation_id=generation_id))
        page = metadata_repo.page_for_user("ann@example.com", 0, 10)
        assert [g.id for g in page.items] == ids[::-1]

    def test_a_page_holds_only_the_requested_persons_records(
        self,
        metadata_repo: MetadataRepository,
    ) -> None:
        """Emails arrive normalised and are compared exactly (the service normalises them)."""
        ann = make_generation("ann@example.com")
        bob = make_generation("bob@example.org")
        metadata_repo.add(ann)
        metadata_repo.add(bob)
        page = metadata_repo.page_for_user("ann@example.com", 0, 10)
        assert page.items == (ann,)
        assert page.total == 1
        assert metadata_repo.page_for_user("bob@example.org", 0, 10).items == (bob,)

    def test_usage_sums_each_persons_costs_exactly_largest_spend_first(
        self,
        metadata_repo: MetadataRepository,
    ) -> None:
        """Counts and Decimal sums per person; ties in spend are ordered by email."""
        for email, cost in [
            ("bob@example.org", "0.1"),
            ("bob@example.org", "0.2"),
            ("ann@example.com", "0.24"),
            ("carl@example.net", "0.3"),
            ("dora@example.net", "0.3"),
        ]:
            metadata_repo.add(make_generation(email, cost=cost))
        report = metadata_repo.usage()
        assert report.rows == (
            UserUsage("bob@example.org", 2, CostEstimate(Decimal("0.3"))),
            UserUsage("carl@example.net", 1, CostEstimate(Decimal("0.3"))),
            UserUsage("dora@example.net", 1, CostEstimate(Decimal("0.3"))),
            UserUsage("ann@example.com", 1, CostEstimate(Decimal("0.24"))),
        )
        assert report.total_count == 5
        assert report.total_cost == CostEstimate(Decimal("1.14"))

    def test_amounts_finer_than_a_micro_dollar_still_sum_exactly(
        self,
        metadata_repo: MetadataRepository,
    ) -> None:
        """Totals equal the exact Decimal sum, whatever the precision of each cost."""
        costs = ["0.0000001", "0.067", "1.23456789", "0.0000001"]
        for cost in costs:
            metadata_repo.add(make_generation(cost=cost))
        total = metadata_repo.usage().total_cost.usd
        assert total == sum((Decimal(c) for c in costs), Decimal(0)) == Decimal("1.30156809")
        assert metadata_repo.daily_spend(NOON.date())[0].cost.usd == total

    def test_usage_can_be_limited_to_some_people(
        self,
        metadata_repo: MetadataRepository,
    ) -> None:
        """Only the listed emails count; an empty list means nobody."""
        metadata_repo.add(make_generation("ann@example.com", cost="0.1"))
        metadata_repo.add(make_generation("bob@example.org", cost="0.2"))
        only_ann = metadata_repo.usage(["ann@example.com", "nobody@example.com"])
        assert only_ann.rows == (UserUsage("ann@example.com", 1, CostEstimate(Decimal("0.1"))),)
        assert metadata_repo.usage([]).rows == ()
        assert metadata_repo.usage(frozenset({"bob@example.org"})).total_count == 1

    def test_daily_spend_groups_by_utc_day_and_person_from_the_given_day(
        self,
        metadata_repo: MetadataRepository,
    ) -> None:
        """One minute either side of UTC midnight are different days; earlier days drop out."""
        midnight = datetime(2026, 11, 24, tzinfo=UTC)
        for email, at, cost in [
            ("ann@example.com", midnight - timedelta(days=3), "5"),
            ("ann@example.com", midnight - timedelta(minutes=1), "0.1"),
            ("ann@example.com", midnight - timedelta(minutes=2), "0.2"),
            ("ann@example.com", midnight + timedelta(minutes=1), "0.24"),
            ("bob@example.org", midnight + timedelta(minutes=1), "0.067"),
        ]:
            metadata_repo.add(make_generation(email, at=at, cost=cost))
        assert metadata_repo.daily_spend(date(2026, 11, 23)) == [
            DailySpend("2026-11-23", "ann@example.com", 2, CostEstimate(Decimal("0.3"))),
            DailySpend("2026-11-24", "ann@example.com", 1, CostEstimate(Decimal("0.24"))),
            DailySpend("2026-11-24", "bob@example.org", 1, CostEstimate(Decimal("0.067"))),
        ]
        assert metadata_repo.daily_spend(date(2026, 11, 23), ["bob@example.org"]) == [
            DailySpend("2026-11-24", "bob@example.org", 1, CostEstimate(Decimal("0.067"))),
        ]
        assert metadata_repo.daily_spend(date(2026, 11, 25)) == []

    def test_usage_of_a_period_counts_only_its_utc_days(
        self,
        metadata_repo: MetadataRepository,
    ) -> None:
        """A month is midnight to midnight UTC at both ends; rendering records never count."""
        first = datetime(2026, 12, 1, tzinfo=UTC)
        for email, at, cost, status in [
            ("ann@example.com", first - timedelta(microseconds=1), "5", GenerationStatus.DONE),
            ("ann@example.com", first, "0.1", GenerationStatus.DONE),
            (
                "ann@example.com",
                first + timedelta(days=30, hours=23),
                "0.2",
                GenerationStatus.FAILED,
            ),
            ("ann@example.com", first + timedelta(days=31), "7", GenerationStatus.DONE),
            ("ann@example.com", first + timedelta(days=2), "9", GenerationStatus.RENDERING),
            ("bob@example.org", first + timedelta(days=3), "0.067", GenerationStatus.DONE),
        ]:
            metadata_repo.add(make_generation(email, at=at, cost=cost, status=status))
        december = Period.month_of(date(2026, 12, 17))
        assert metadata_repo.usage(period=december).rows == (
            UserUsage("ann@example.com", 1, CostEstimate(Decimal("0.3"))),
            UserUsage("bob@example.org", 1, CostEstimate(Decimal("0.067"))),
        )
        only_bob = metadata_repo.usage(["bob@example.org"], december)
        assert only_bob.total_cost == CostEstimate(Decimal("0.067"))
        day = metadata_repo.usage(["ann@example.com"], Period.day_of(date(2026, 11, 30)))
        assert day.total_cost == CostEstimate(Decimal("5"))
        assert metadata_repo.usage(period=Period()).total_cost == CostEstimate(Decimal("12.367"))
        assert metadata_repo.usage(period=Period(start=date(2027, 1, 1))).total_count == 1
        assert metadata_repo.usage(period=Period(end=date(2026, 12, 1))).total_count == 1

    def test_a_page_can_hold_only_the_prompts_that_contain_every_word(
        self,
        metadata_repo: MetadataRepository,
    ) -> None:
        """Words match anywhere, in any case and order; the total counts only the matches."""
        prompts = [
            "A red LIGHTHOUSE in a storm",
            "a fox in the snow",
            "Leuchtturm und Lighthouse, Aquarell",
            "lighthouse",
        ]
        made = [
            make_generation(prompt=p, at=NOON + timedelta(minutes=i)) for i, p in enumerate(prompts)
        ]
        for generation in made:
            metadata_repo.add(generation)
        metadata_repo.add(make_generation("bob@example.org", prompt="lighthouse"))
        metadata_repo.add(
            make_generation(prompt="lighthouse, rendering", status=GenerationStatus.RENDERING)
        )
        page = metadata_repo.page_for_user("ann@example.com", 0, 2, "lighthouse")
        assert page.total == 3
        assert page.items == (made[3], made[2])
        rest = metadata_repo.page_for_user("ann@example.com", 2, 2, "lighthouse")
        assert rest.items == (made[0],)
        both = metadata_repo.page_for_user("ann@example.com", 0, 9, "storm  lighthouse")
        assert both.items == (made[0],)
        assert metadata_repo.page_for_user("ann@example.com", 0, 9, "whale").total == 0
        assert metadata_repo.page_for_user("ann@example.com", 0, 9, "").total == 4

    def test_spend_puts_the_list_price_beside_the_cost_in_usage_order(
        self,
        metadata_repo: MetadataRepository,
    ) -> None:
        """Costs from usage keep their estimate; older records' estimate is their cost."""
        first = datetime(2026, 12, 1, tzinfo=UTC)
        measured = attrs.evolve(
            make_generation("ann@example.com", at=first, cost="0.071"),
            estimate=CostEstimate(Decimal("0.067")),
            cost_basis=CostBasis.USAGE,
        )
        old = make_generation("ann@example.com", at=first + timedelta(hours=1), cost="0.134")
        failed = attrs.evolve(
            make_generation(
                "bob@example.org", at=first, cost="0.24", status=GenerationStatus.FAILED
            ),
            estimate=CostEstimate(Decimal("0.24")),
        )
        rendering = make_generation("bob@example.org", cost="9", status=GenerationStatus.RENDERING)
        earlier = make_generation("bob@example.org", at=first - timedelta(days=1), cost="0.5")
        for generation in (measured, old, failed, rendering, earlier):
            metadata_repo.add(generation)
        december = Period.month_of(first.date())
        assert metadata_repo.spend(period=december) == [
            PersonSpend(
                "bob@example.org", 0, CostEstimate(Decimal("0.24")), CostEstimate(Decimal("0.24"))
            ),
            PersonSpend(
                "ann@example.com", 2, CostEstimate(Decimal("0.205")), CostEstimate(Decimal("0.201"))
            ),
        ]
        everyone = metadata_repo.spend()
        assert [(r.email, r.image_count, r.cost) for r in everyone] == [
            (r.email, r.image_count, r.cost) for r in metadata_repo.usage().rows
        ]
        assert metadata_repo.spend(["ann@example.com"], Period.day_of(date(2026, 11, 30))) == []

    def test_cost_rows_are_the_settled_records_of_a_period_oldest_first(
        self,
        metadata_repo: MetadataRepository,
    ) -> None:
        """Each row carries the export's facts; rendering records and other days are left out."""
        first = datetime(2026, 12, 1, tzinfo=UTC)
        tie = first + timedelta(hours=5)
        ids = sorted(uuid.uuid4() for _ in range(2))
        made = [
            make_generation("ann@example.com", at=first - timedelta(microseconds=1)),
            make_generation("ann@example.com", at=first, prompt="x" * (PROMPT_CHARS + 50)),
            make_generation("bob@example.org", at=tie, generation_id=ids[1]),
            make_generation("ann@example.com", at=tie, generation_id=ids[0], cost="0.3"),
            make_generation("bob@example.org", at=tie, status=GenerationStatus.RENDERING),
            make_generation(
                "bob@example.org", at=first + timedelta(days=2), status=GenerationStatus.FAILED
            ),
            make_generation("ann@example.com", at=first + timedelta(days=31)),
        ]
        measured = attrs.evolve(
            made[3], estimate=CostEstimate(Decimal("0.067")), cost_basis=CostBasis.USAGE
        )
        made[3] = measured
        for generation in reversed(made):
            metadata_repo.add(generation)
        december = Period.month_of(first.date())
        rows = list(metadata_repo.cost_rows(period=december))
        assert [r.id for r in rows] == [made[1].id, ids[0], ids[1], made[5].id]
        assert rows[0].prompt == short_prompt(made[1].prompt)
        assert len(rows[0].prompt) == PROMPT_CHARS
        assert rows[1] == CostRow.of(measured)
        assert (rows[1].cost, rows[1].list_price, rows[1].cost_basis) == (
            CostEstimate(Decimal("0.3")),
            CostEstimate(Decimal("0.067")),
            CostBasis.USAGE,
        )
        assert rows[1].created_at == tie
        assert rows[3].status is GenerationStatus.FAILED
        only_ann = list(metadata_repo.cost_rows(["ann@example.com"], december))
        assert [r.id for r in only_ann] == [made[1].id, ids[0]]
        everything = list(metadata_repo.cost_rows())
        assert len(everything) == 6
        assert everything == sorted(everything, key=lambda r: (r.created_at, str(r.id)))
        assert list(metadata_repo.cost_rows(["nobody@example.com"])) == []

    def test_a_settled_repository_is_not_rebuilding(
        self,
        metadata_repo: MetadataRepository,
    ) -> None:
        """rebuilding() is None once every record is indexed (always, without an index)."""
        metadata_repo.add(make_generation())
        assert metadata_repo.rebuilding() is None

    def test_users_are_listed_once_each_and_sorted(
        self,
        metadata_repo: MetadataRepository,
    ) -> None:
        """Everyone with a record, without repeats."""
        for email in ["bob@example.org", "ann@example.com", "ann@example.com", "bob@example.org"]:
            metadata_repo.add(make_generation(email))
        assert metadata_repo.users() == ["ann@example.com", "bob@example.org"]

    def test_an_email_that_cannot_be_normalised_is_kept_as_given(
        self,
        metadata_repo: MetadataRepository,
    ) -> None:
        """Non-ASCII emails never match an ASCII one but still have their own records."""
        odd = make_generation("Zoë@example.com")
        metadata_repo.add(odd)
        assert metadata_repo.users() == ["Zoë@example.com"]
        assert metadata_repo.page_for_user("Zoë@example.com", 0, 5).items == (odd,)
        assert metadata_repo.page_for_user("zoë@example.com", 0, 5).total == 0

    @EXAMPLES
    @given(generations=GENERATION_LISTS)
    def test_usage_totals_equal_the_exact_sum_of_costs(
        self,
        metadata_repo_factory: AdapterFactory[MetadataRepository],
        generations: list[Generation],
    ) -> None:
        """For any records: per-person rows and the total are the exact Decimal sums."""
        with metadata_repo_factory() as repo:
            for generation in generations:
                repo.add(generation)
            report = repo.usage()
        assert report == summarise_usage(generations)
        assert report.total_count == len(generations)
        assert report.total_cost.usd == sum((g.cost.usd for g in generations), Decimal(0))

    @EXAMPLES
    @given(generations=GENERATION_LISTS, limit=st.integers(min_value=1, max_value=5))
    def test_pages_concatenated_are_the_newest_first_list(
        self,
        metadata_repo_factory: AdapterFactory[MetadataRepository],
        generations: list[Generation],
        limit: int,
    ) -> None:
        """Paging through anyone's records yields exactly their records, newest first."""
        with metadata_repo_factory() as repo:
            for generation in generations:
                repo.add(generation)
            for person in {g.email for g in generations}:
                expected = newest_first(g for g in generations if g.email == person)
                seen: list[Generation] = []
                offset = 0
                while True:
                    page = repo.page_for_user(person, offset, limit)
                    assert page.total == len(expected)
                    seen.extend(page.items)
                    offset += limit
                    if not page.has_next:
                        break
                assert seen == expected

    @EXAMPLES
    @given(generations=GENERATION_LISTS, since=st.dates(date(2025, 12, 29), date(2026, 11, 26)))
    def test_daily_spend_and_users_agree_with_the_records(
        self,
        metadata_repo_factory: AdapterFactory[MetadataRepository],
        generations: list[Generation],
        since: date,
    ) -> None:
        """Daily spend matches a direct grouping by UTC day; users are the distinct owners."""
        with metadata_repo_factory() as repo:
            for generation in generations:
                repo.add(generation)
            assert repo.daily_spend(since) == summarise_daily(generations, since)
            assert repo.users() == sorted({g.email for g in generations})
            for generation in generations:
                assert repo.get(generation.id) == generation
