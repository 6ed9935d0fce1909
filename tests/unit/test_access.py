"""The access policy: who may generate and whose images each person may see."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from image_core.access import AccessPolicy, normalise_email, parse_email_list
from image_core.domain import Identity

ALICE = "alice@example.com"
BOB = "bob@example.com"
ADMIN = "admin@example.com"
STRANGER = "mallory@example.com"


def verified(email: str) -> Identity:
    """An identity whose email the provider vouched for."""
    return Identity(email, email_verified=True)


@pytest.fixture
def policy() -> AccessPolicy:
    """Alice and Bob may generate; the admin is only on the admin list."""
    return AccessPolicy(allowed=frozenset({ALICE, BOB}), admins=frozenset({ADMIN}))


# --- who may generate --------------------------------------------------------------


def test_an_allow_listed_verified_email_may_generate(policy: AccessPolicy) -> None:
    """The plain case: on the list and verified."""
    assert policy.may_generate(verified(ALICE))
    assert policy.may_generate(verified(BOB))


def test_an_admin_may_generate_without_being_on_the_allow_list(policy: AccessPolicy) -> None:
    """Admins are implicitly allowed."""
    assert ADMIN not in policy.allowed
    assert policy.may_generate(verified(ADMIN))
    assert policy.is_admin(verified(ADMIN))


def test_a_stranger_may_not_generate(policy: AccessPolicy) -> None:
    """A valid Google login alone is not enough."""
    assert not policy.may_generate(verified(STRANGER))
    assert not policy.is_admin(verified(STRANGER))


def test_an_allow_listed_user_is_not_an_admin(policy: AccessPolicy) -> None:
    """Being allowed to generate does not grant seeing everyone."""
    assert not policy.is_admin(verified(ALICE))


@pytest.mark.parametrize(
    "email",
    ["ALICE@EXAMPLE.COM", "Alice@Example.com", "aLiCe@eXaMpLe.CoM", "  alice@example.com  "],
)
def test_emails_compare_case_insensitively_for_ascii(policy: AccessPolicy, email: str) -> None:
    """ASCII case and surrounding whitespace do not matter."""
    assert policy.may_generate(verified(email))


def test_the_lists_themselves_are_case_insensitive() -> None:
    """Entries written in capitals still match lower-case logins."""
    policy = AccessPolicy(allowed=frozenset({"Alice@Example.COM"}), admins=frozenset({"ROOT@X.IO"}))
    assert policy.allowed == frozenset({ALICE})
    assert policy.may_generate(verified(ALICE))
    assert policy.is_admin(verified("root@x.io"))


@pytest.mark.parametrize(
    ("listed", "login"),
    [
        ("kate@example.com", "\u212aate@example.com"),  # KELVIN SIGN lowercases to "k"
        ("kate@example.com", "\u212aATE@EXAMPLE.COM"),
        ("nick@example.com", "nic\u212a@example.com"),
        ("maria@example.com", "mar\u0131a@example.com"),  # dotless i
        ("maria@example.com", "MAR\u0130A@example.com"),  # dotted capital I
        ("alice@example.com", "\uff41lice@example.com"),  # fullwidth a
        ("alice@example.com", "\uff21\uff2c\uff29\uff23\uff25@example.com"),  # fullwidth ALICE
        ("alice@example.com", "alice@\uff45xample.com"),
        ("strasse@example.com", "stra\u00dfe@example.com"),  # sharp s folds to "ss"
        ("strasse@example.com", "STRA\u1e9eE@example.com"),  # capital sharp s
        ("sam@example.com", "\u017fam@example.com"),  # long s uppercases to "S"
        ("anna@example.com", "\u0430nna@example.com"),  # Cyrillic a
    ],
)
def test_a_non_ascii_email_never_matches_its_ascii_look_alike(listed: str, login: str) -> None:
    """Unicode case mapping must never turn a look-alike login into an allow-listed email."""
    policy = AccessPolicy(allowed=frozenset({listed}), admins=frozenset({listed}))
    assert not policy.may_generate(verified(login))
    assert not policy.is_admin(verified(login))
    assert not policy.may_view(verified(login), listed)
    assert policy.visible_emails(verified(login)) == frozenset()


def test_the_kelvin_sign_really_lowercases_to_an_ascii_k() -> None:
    """The attack above is real: str.lower maps U+212A onto "k"."""
    assert "\u212a".lower() == "k"
    assert "stra\u00dfe".casefold() == "strasse"


@pytest.mark.parametrize(
    "email", ["stra\u00dfe@example.com", "j\u00fcrgen@example.com", "\u212aate@example.com"]
)
def test_a_non_ascii_email_never_matches_even_when_listed_verbatim(email: str) -> None:
    """Non-ASCII entries are dropped from the lists, so not even an exact match works."""
    policy = AccessPolicy(allowed=frozenset({email}), admins=frozenset({email}))
    assert policy.allowed == frozenset()
    assert policy.admins == frozenset()
    assert not policy.may_generate(verified(email))
    assert not policy.is_admin(verified(email))


@pytest.mark.parametrize("email", [ALICE, ADMIN])
def test_an_unverified_email_never_matches(policy: AccessPolicy, email: str) -> None:
    """``email_verified`` false means neither generating nor admin rights."""
    unverified = Identity(email, email_verified=False)
    assert not policy.may_generate(unverified)
    assert not policy.is_admin(unverified)
    assert policy.visible_emails(unverified) == frozenset()
    assert not policy.may_view(unverified, email)


def test_identities_are_unverified_unless_said_otherwise() -> None:
    """The safe default: an Identity built without the flag is not verified."""
    assert Identity(ALICE).email_verified is False
    assert not AccessPolicy(allowed=frozenset({ALICE})).may_generate(Identity(ALICE))


def test_no_identity_never_matches(policy: AccessPolicy) -> None:
    """Not signed in: nothing is allowed and nothing is visible."""
    assert not policy.may_generate(None)
    assert not policy.is_admin(None)
    assert policy.visible_emails(None) == frozenset()
    assert not policy.may_view(None, ALICE)


def test_an_empty_policy_allows_nobody() -> None:
    """Without lists, a closed policy refuses everyone."""
    policy = AccessPolicy()
    assert not policy.open
    assert not policy.may_generate(verified(ALICE))
    assert not policy.is_admin(verified(ALICE))


# --- the open (development) policy --------------------------------------------------


@pytest.mark.parametrize(
    "identity",
    [None, verified(STRANGER), Identity(STRANGER, email_verified=False), verified("\u212a@x.io")],
)
def test_the_open_policy_allows_everyone_and_shows_everything(identity: Identity | None) -> None:
    """IMG_AUTH_DISABLED=1: every caller may generate and see every user."""
    policy = AccessPolicy.open_policy()
    assert policy.open
    assert policy.may_generate(identity)
    assert policy.is_admin(identity)
    assert policy.visible_emails(identity) is None
    assert policy.may_view(identity, ALICE)
    assert policy.may_view(identity, "anyone@anywhere.example")


# --- visibility --------------------------------------------------------------------


def test_an_admin_sees_every_user(policy: AccessPolicy) -> None:
    """``None`` from visible_emails means "everyone"."""
    assert policy.visible_emails(verified(ADMIN)) is None
    for owner in (ALICE, BOB, STRANGER, ADMIN, "nobody@nowhere.example"):
        assert policy.may_view(verified(ADMIN), owner)


def test_a_user_sees_only_their_own_email(policy: AccessPolicy) -> None:
    """A non-admin's visible set is exactly themselves, normalised."""
    assert policy.visible_emails(verified("Alice@Example.COM")) == frozenset({ALICE})
    assert policy.may_view(verified(ALICE), ALICE)
    assert policy.may_view(verified(ALICE), "ALICE@example.com")
    assert not policy.may_view(verified(ALICE), BOB)
    assert not policy.may_view(verified(ALICE), ADMIN)


def test_a_user_cannot_view_a_look_alike_owner() -> None:
    """An owner string that cannot be normalised is visible to admins only."""
    look_alike = "\u212aate@example.com"
    policy = AccessPolicy(allowed=frozenset({"kate@example.com"}), admins=frozenset({ADMIN}))
    assert not policy.may_view(verified("kate@example.com"), look_alike)
    assert policy.may_view(verified(ADMIN), look_alike)


def test_a_stranger_sees_nobody(policy: AccessPolicy) -> None:
    """A signed-in stranger cannot even see their own (non-existent) images."""
    assert policy.visible_emails(verified(STRANGER)) == frozenset()
    assert not policy.may_view(verified(STRANGER), STRANGER)
    assert not policy.may_view(verified(STRANGER), ALICE)


# --- parsing the settings ------------------------------------------------------------


def test_parse_email_list_reads_a_comma_separated_setting() -> None:
    """Entries are trimmed and lower-cased."""
    assert parse_email_list(" Alice@Example.com,bob@example.com ,ADMIN@EXAMPLE.COM") == {
        ALICE,
        BOB,
        ADMIN,
    }


@pytest.mark.parametrize("raw", ["", " ", ",", " , ,, ", "\n"])
def test_parse_email_list_of_only_blanks_is_empty(raw: str) -> None:
    """An unset or blank setting allows nobody."""
    assert parse_email_list(raw) == frozenset()


def test_parse_email_list_ignores_blanks_and_junk() -> None:
    """Entries without an "@", with inner whitespace or non-ASCII letters are dropped."""
    raw = ",".join(
        [
            ALICE,
            "",
            "   ",
            "not-an-email",
            "alice at example.com",
            "a b@example.com",
            "tab\t@example.com",
            "j\u00fcrgen@example.com",
            "\u212aate@example.com",
            BOB.upper(),
        ]
    )
    assert parse_email_list(raw) == frozenset({ALICE, BOB})


def test_parse_email_list_folds_duplicates() -> None:
    """The same address in different cases is one entry."""
    assert parse_email_list(f"{ALICE},{ALICE.upper()}, {ALICE} ") == frozenset({ALICE})


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (" Alice@Example.COM ", ALICE),
        ("", None),
        ("   ", None),
        ("alice", None),
        ("a lice@example.com", None),
        ("\u212aate@example.com", None),
    ],
)
def test_normalise_email_trims_lowercases_or_refuses(raw: str, expected: str | None) -> None:
    """The single rule both lists and logins go through."""
    assert normalise_email(raw) == expected


# --- properties ----------------------------------------------------------------------

# Fast stand-in for st.emails(): any printable ASCII local part a mail system allows.
_LOCAL = st.text(
    alphabet=string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~.", min_size=1, max_size=16
)
_DOMAIN = st.text(alphabet=string.ascii_letters + string.digits + "-", min_size=1, max_size=12)
_EMAILS = st.builds("{}@{}.{}".format, _LOCAL, _DOMAIN, st.sampled_from(["com", "IO", "example"]))
_NON_ASCII = st.characters(min_codepoint=0x80, codec="utf-8")


@st.composite
def _random_case(draw: st.DrawFn, text: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.upper() if f else c.lower() for c, f in zip(text, flips, strict=True))


@given(_EMAILS.flatmap(lambda e: st.tuples(st.just(e), _random_case(e))))
def test_any_listed_email_matches_in_any_ascii_casing(pair: tuple[str, str]) -> None:
    """Allow-listed, verified, any ASCII casing: allowed; unverified: refused."""
    listed, login = pair
    policy = AccessPolicy(allowed=frozenset({listed}))
    assert policy.may_generate(verified(login))
    assert not policy.may_generate(Identity(login, email_verified=False))
    assert policy.visible_emails(verified(login)) == frozenset({listed.lower()})


@given(_EMAILS, _EMAILS)
def test_an_unlisted_email_never_matches(listed: str, login: str) -> None:
    """Only the listed address (case aside) is allowed."""
    policy = AccessPolicy(allowed=frozenset({listed}))
    assert policy.may_generate(verified(login)) == (login.lower() == listed.lower())


@given(_EMAILS, st.data())
def test_inserting_any_non_ascii_character_makes_an_email_unmatchable(
    email: str, data: st.DataObject
) -> None:
    """Wherever a non-ASCII character appears, the email matches nothing, itself included."""
    position = data.draw(st.integers(0, len(email)))
    tainted = email[:position] + data.draw(_NON_ASCII) + email[position:]
    candidates = frozenset({email, tainted, tainted.lower(), tainted.upper()})
    policy = AccessPolicy(allowed=candidates, admins=candidates)
    assert not policy.may_generate(verified(tainted))
    assert not policy.is_admin(verified(tainted))
    assert not policy.may_view(verified(tainted), email)


@given(
    st.lists(_EMAILS, max_size=4),
    st.lists(_EMAILS, max_size=2),
    _EMAILS,
    st.booleans(),
    st.data(),
)
def test_visibility_is_admin_everything_user_self_others_nothing(
    allowed: list[str], admins: list[str], extra: str, is_verified: bool, data: st.DataObject
) -> None:
    """may_view is exactly: admin sees all; an allowed user sees their own; nobody else."""
    known = st.sampled_from([*allowed, *admins, extra])
    viewer_email = data.draw(known.flatmap(_random_case), label="viewer")
    owner = data.draw(known.flatmap(_random_case), label="owner")
    policy = AccessPolicy(allowed=frozenset(allowed), admins=frozenset(admins))
    viewer = Identity(viewer_email, email_verified=is_verified)
    lowered_admins = {a.lower() for a in admins}
    lowered_allowed = {a.lower() for a in allowed} | lowered_admins
    is_admin = is_verified and viewer_email.lower() in lowered_admins
    is_user = is_verified and viewer_email.lower() in lowered_allowed
    expected = is_admin or (is_user and owner.lower() == viewer_email.lower())
    assert policy.may_view(viewer, owner) == expected
    assert policy.may_generate(viewer) == is_user
    assert policy.is_admin(viewer) == is_admin
    assert (policy.visible_emails(viewer) is None) == is_admin
