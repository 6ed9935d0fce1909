"""The dashboard's side of uploaded photos: listed in their owner's gallery, with
thumbnails and photos only the owner and admins can fetch."""

from __future__ import annotations

from starlette.testclient import TestClient

from image_core.domain import Identity, Upload
from image_core.testing import make_png
from tests.dashboard.conftest import PUBLIC_URL, Login, csrf_token
from tests.dashboard.support import ADMIN, OTHER, USER, Seeded, run_sync


def uploaded(seeded: Seeded, email: str, file_name: str | None = None) -> Upload:
    """A photo uploaded by ``email`` through the service, as the upload tool does."""
    photo = make_png(48, 32, (30, 60, 200))
    return run_sync(
        seeded.service.upload_photo(Identity(email, email_verified=True), photo, file_name)
    )


def test_a_persons_gallery_lists_their_uploads_with_names_to_copy(
    client: TestClient, login: Login, seeded: Seeded
) -> None:
    """Newest first, with the thumbnail, the display name (escaped) and the name to use."""
    first = uploaded(seeded, USER, "beach.png")
    second = uploaded(seeded, USER, '<img src=x onerror="alert(1)">.png')
    login(USER)
    page = client.get("/ui/gallery").text
    assert "Your uploaded photos" in page
    assert page.index(second.name) < page.index(first.name)
    assert f'src="/ui/uploads/{first.name}"' in page
    assert f'data-copy="{first.name}"' in page
    assert "beach.png" in page
    assert '<img src=x onerror="alert(1)">' not in page
    assert "&lt;img src=x" in page


def test_the_owner_and_admins_fetch_an_uploads_thumbnail_and_photo_privately(
    client: TestClient, login: Login, seeded: Seeded
) -> None:
    """Private cache only; the photo comes as it is kept."""
    upload = uploaded(seeded, USER)
    for who in (USER, ADMIN):
        login(who)
        thumbnail = client.get(f"/ui/uploads/{upload.name}")
        photo = client.get(f"/ui/uploads/{upload.name}/photo")
        assert thumbnail.status_code == photo.status_code == 200
        assert thumbnail.headers["cache-control"].startswith("private")
        assert photo.headers["cache-control"].startswith("private")
        assert photo.content == seeded.uploads.read(upload)
    login(ADMIN)
    assert upload.name in client.get(f"/ui/gallery/{USER}").text


def test_nobody_else_can_fetch_or_see_an_upload(
    client: TestClient, login: Login, seeded: Seeded
) -> None:
    """Another person, or nobody signed in, gets the plain 404 page; no listing either."""
    upload = uploaded(seeded, USER)
    paths = (f"/ui/uploads/{upload.name}", f"/ui/uploads/{upload.name}/photo")
    for path in paths:
        assert client.get(path, follow_redirects=False).status_code == 404
    login(OTHER)
    for path in (*paths, f"/ui/uploads/upload-{upload.id}", "/ui/uploads/..%2F..%2Fsecret"):
        answer = client.get(path)
        assert answer.status_code == 404
        assert answer.headers["content-type"].startswith("text/html")
    assert client.get(f"/ui/gallery/{USER}").status_code == 404
    assert upload.name not in client.get("/ui/gallery").text


def test_the_owner_deletes_an_upload_from_the_gallery_and_it_is_gone(
    client: TestClient, login: Login, seeded: Seeded
) -> None:
    """The card's form deletes it; it is no longer listed, fetched, or usable."""
    upload = uploaded(seeded, USER)
    login(USER)
    token = csrf_token(client.get("/ui/gallery", follow_redirects=True).text)
    answer = client.post(
        f"/ui/uploads/{upload.name}/delete",
        data={"csrf_token": token},
        headers={"origin": PUBLIC_URL},
        follow_redirects=False,
    )
    assert answer.status_code == 303
    assert seeded.uploads.get(upload.id) is None
    assert client.get(f"/ui/uploads/{upload.name}").status_code == 404
    assert upload.name not in client.get("/ui/gallery").text


def test_nobody_else_deletes_an_upload_and_a_forged_deletion_changes_nothing(
    client: TestClient, login: Login, seeded: Seeded
) -> None:
    """Another person gets the 404 page; a post from elsewhere, or without the token, 403."""
    upload = uploaded(seeded, USER)
    login(USER)
    token = csrf_token(client.get("/ui/gallery").text)
    path = f"/ui/uploads/{upload.name}/delete"
    forged: tuple[tuple[dict[str, str], dict[str, str]], ...] = (
        ({"csrf_token": token}, {"origin": "https://evil.example"}),
        ({}, {"origin": PUBLIC_URL}),
    )
    for data, headers in forged:
        assert client.post(path, data=data, headers=headers).status_code == 403
    login(OTHER)
    theirs = csrf_token(client.get("/ui/gallery").text)
    answer = client.post(path, data={"csrf_token": theirs}, headers={"origin": PUBLIC_URL})
    assert answer.status_code == 404
    assert seeded.uploads.get(upload.id) == upload
