"""The PrefStore contract: each person's default model, kept apart and never lost."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from image_core.contracts.samples import EMAILS, EXAMPLES, AdapterFactory
from image_core.ports import PrefStore


class PrefStoreContract:
    """Subclass as ``Test...`` and provide the ``pref_store_factory`` fixture.

    The fixture returns a callable that opens one fresh, empty ``PrefStore`` in a context
    (an ``AdapterFactory``); every test, and every Hypothesis example, gets its own.
    """

    @pytest.fixture
    def pref_store(self, pref_store_factory: AdapterFactory[PrefStore]) -> Iterator[PrefStore]:
        """One fresh adapter for one test."""
        with pref_store_factory() as adapter:
            yield adapter

    def test_nobody_has_a_default_until_they_choose_one(self, pref_store: PrefStore) -> None:
        """An unknown email has no default model."""
        assert pref_store.get_default_model("ann@example.com") is None

    def test_a_chosen_default_is_remembered(self, pref_store: PrefStore) -> None:
        """set then get returns the alias."""
        pref_store.set_default_model("ann@example.com", "pro")
        assert pref_store.get_default_model("ann@example.com") == "pro"

    def test_emails_are_compared_exactly(self, pref_store: PrefStore) -> None:
        """Emails arrive normalised; two that the service could not normalise stay apart."""
        pref_store.set_default_model("zoë@example.com", "pro")
        pref_store.set_default_model("Zoë@example.com", "flash")
        assert pref_store.get_default_model("zoë@example.com") == "pro"
        assert pref_store.get_default_model("Zoë@example.com") == "flash"

    def test_the_latest_choice_wins(self, pref_store: PrefStore) -> None:
        """Choosing again replaces the earlier choice."""
        pref_store.set_default_model("ann@example.com", "pro")
        pref_store.set_default_model("ann@example.com", "flash")
        assert pref_store.get_default_model("ann@example.com") == "flash"

    def test_every_persons_choice_is_kept(self, pref_store: PrefStore) -> None:
        """One person's choice never erases another's."""
        choices = {f"user{i}@example.com": ("pro" if i % 2 else "flash") for i in range(20)}
        for email, alias in choices.items():
            pref_store.set_default_model(email, alias)
        assert {e: pref_store.get_default_model(e) for e in choices} == choices

    @EXAMPLES
    @given(
        choices=st.lists(
            st.tuples(
                EMAILS
                | st.from_regex(r"[A-Za-z0-9._+-]{1,10}@[A-Za-z]{1,8}\.(com|IO)", fullmatch=True),
                st.sampled_from(["flash", "pro", "gemini-3-pro-image"]),
            ),
            max_size=10,
        )
    )
    def test_after_any_sequence_of_choices_each_person_has_their_last(
        self, pref_store_factory: AdapterFactory[PrefStore], choices: list[tuple[str, str]]
    ) -> None:
        """Replaying the choices into a dict keyed by email predicts every answer."""
        expected: dict[str, str] = {}
        with pref_store_factory() as store:
            for email, alias in choices:
                store.set_default_model(email, alias)
                expected[email] = alias
            for email, _ in choices:
                assert store.get_default_model(email) == expected[email]
