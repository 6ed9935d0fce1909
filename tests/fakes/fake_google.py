"""A fake Google identity provider speaking Google's real OAuth/OIDC wire formats.

The OAuth proxy, the dashboard's authlib client and the end-to-end tests talk to it
over loopback HTTP exactly as they would talk to Google, so the real clients (not
mocks) are exercised. Login is automatic: ``authorize`` approves as ``next_email``.

    with FakeGoogle(client_id="cid", client_secret="secret") as g:
        g.next_email = "ada@example.com"
        ...  # point the code under test at g.base_url
        assert g.authorize_requests[0]["scope"] == "openid ..."
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit

from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

__all__ = [
    "AUTHORIZE_PATH",
    "EMAIL_SCOPE",
    "JWKS_PATH",
    "TOKENINFO_PATH",
    "TOKEN_PATH",
    "USERINFO_V1_PATH",
    "USERINFO_V2_PATH",
    "FakeGoogle",
    "RecordedRequest",
]

AUTHORIZE_PATH = "/o/oauth2/v2/auth"
TOKEN_PATH = "/token"
TOKENINFO_PATH = "/tokeninfo"
USERINFO_V1_PATH = "/v1/userinfo"
USERINFO_V2_PATH = "/oauth2/v2/userinfo"
JWKS_PATH = "/oauth2/v3/certs"
DISCOVERY_PATH = "/.well-known/openid-configuration"

EMAIL_SCOPE = "https://www.googleapis.com/auth/userinfo.email"
PROFILE_SCOPE = "https://www.googleapis.com/auth/userinfo.profile"
# Google accepts the short names but always reports the full URIs back.
_SCOPE_ALIASES = {"email": EMAIL_SCOPE, "profile": PROFILE_SCOPE}


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the fake saw it, for assertions (secrets included: it is a test)."""

    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    headers: dict[str, str]


@dataclass
class _User:
    email: str
    email_verified: bool
    name: str

    @property
    def sub(self) -> str:
        """A stable numeric subject per email, like Google's 21-digit ids."""
        digest = hashlib.sha256(self.email.lower().encode()).hexdigest()
        return str(int(digest[:16], 16)).zfill(21)[:21]


@dataclass
class _Grant:
    """What one authorization approved: the user, scopes and PKCE/nonce binding."""

    user: _User
    scopes: list[str]
    client_id: str
    redirect_uri: str
    code_challenge: str | None
    code_challenge_method: str | None
    nonce: str | None
    offline: bool


@dataclass
class _AccessToken:
    grant: _Grant
    expires_at: float


@dataclass
class _State:
    codes: dict[str, _Grant] = field(default_factory=dict)
    access_tokens: dict[str, _AccessToken] = field(default_factory=dict)
    refresh_tokens: dict[str, _Grant] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)


class FakeGoogle:
    """Google's authorize/token/tokeninfo/userinfo/OIDC endpoints on 127.0.0.1.

    Knobs (set any time, they apply to the next authorization or token):
    ``next_email``, ``email_verified``, ``next_name``, ``next_error`` (an OAuth
    error code such as ``"access_denied"`` for the next authorization only),
    ``access_token_lifetime`` (seconds, Google's is 3599) and ``redirect_uris``
    (when set, authorize refuses any other ``redirect_uri``, as Google does).
    """

    def __init__(self, *, client_id: str, client_secret: str) -> None:
        self.client_id = client_id
        self.client_secret = client_secret
        self.next_email = "user@example.com"
        self.email_verified = True
        self.next_name = "Test User"
        self.next_error: str | None = None
        self.access_token_lifetime = 3599
        self.redirect_uris: list[str] | None = None
        self._lock = threading.Lock()
        self._state = _State()
        self._key = RSAKey.generate_key(
            2048, parameters={"kid": secrets.token_hex(8), "use": "sig", "alg": "RS256"}
        )
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ----------------------------------------------------------------- lifecycle

    def start(self) -> FakeGoogle:
        """Bind a random loopback port and serve in a daemon thread."""
        handler = type("_BoundHandler", (_Handler,), {"fake": self})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket (idempotent)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> FakeGoogle:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash); also the OIDC issuer."""
        if self._server is None:
            raise RuntimeError("FakeGoogle is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def issuer(self) -> str:
        return self.base_url

    @property
    def discovery_url(self) -> str:
        return self.base_url + DISCOVERY_PATH

    # ------------------------------------------------------------ test helpers

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far, oldest first."""
        with self._lock:
            return list(self._state.requests)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    @property
    def authorize_requests(self) -> list[dict[str, str]]:
        """Query parameters of each authorization request (scope, nonce, PKCE ...)."""
        return [r.query for r in self.requests_to(AUTHORIZE_PATH)]

    @property
    def issued_secrets(self) -> list[str]:
        """Every access and refresh token handed out (to look for leaks)."""
        with self._lock:
            return [*self._state.access_tokens, *self._state.refresh_tokens]

    def expire_access_tokens(self) -> None:
        """Make every issued access token expired, as if an hour had passed."""
        with self._lock:
            for token in self._state.access_tokens.values():
                token.expires_at = 0.0

    def revoke_all(self) -> None:
        """Forget every access and refresh token, as a user revoking access would."""
        with self._lock:
            self._state.access_tokens.clear()
            self._state.refresh_tokens.clear()

    def sign_id_token(self, claims: Mapping[str, Any]) -> str:
        """Sign arbitrary claims with the fake's key (for tampering tests)."""
        header = {"alg": "RS256", "kid": self._key.kid, "typ": "JWT"}
        return jwt.encode(header, dict(claims), self._key)

    # ---------------------------------------------------------------- handlers

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._state.requests.append(request)

    def _discovery(self) -> dict[str, Any]:
        base = self.base_url
        return {
            "issuer": base,
            "authorization_endpoint": base + AUTHORIZE_PATH,
            "token_endpoint": base + TOKEN_PATH,
            "userinfo_endpoint": base + USERINFO_V1_PATH,
            "jwks_uri": base + JWKS_PATH,
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "email", "profile"],
            "token_endpoint_auth_methods_supported": [
                "client_secret_post",
                "client_secret_basic",
            ],
            "claims_supported": [
                "aud",
                "email",
                "email_verified",
                "exp",
                "iat",
                "iss",
                "name",
                "nonce",
                "sub",
            ],
            "code_challenge_methods_supported": ["plain", "S256"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
        }

    def _authorize(self, query: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        """Auto-approve: redirect to ``redirect_uri`` with a code (or an error)."""
        if query.get("client_id") != self.client_id:
            return (
                400,
                {},
                {"error": "invalid_client", "error_description": "OAuth client not found."},
            )
        redirect_uri = query.get("redirect_uri", "")
        if not redirect_uri or (
            self.redirect_uris is not None and redirect_uri not in self.redirect_uris
        ):
            return 400, {}, {"error": "redirect_uri_mismatch"}
        if query.get("response_type") != "code":
            return 400, {}, {"error": "unsupported_response_type"}
        params: dict[str, str] = {}
        if (state := query.get("state")) is not None:
            params["state"] = state
        with self._lock:
            error, self.next_error = self.next_error, None
            if error is not None:
                params["error"] = error
            else:
                scopes = [_SCOPE_ALIASES.get(s, s) for s in query.get("scope", "").split()]
                if not scopes:
                    return (
                        400,
                        {},
                        {"error": "invalid_request", "error_description": "Missing scope"},
                    )
                code = "4/0fake-" + secrets.token_urlsafe(24)
                self._state.codes[code] = _Grant(
                    user=_User(self.next_email, self.email_verified, self.next_name),
                    scopes=scopes,
                    client_id=self.client_id,
                    redirect_uri=redirect_uri,
                    code_challenge=query.get("code_challenge"),
                    code_challenge_method=query.get("code_challenge_method"),
                    nonce=query.get("nonce"),
                    offline=query.get("access_type") == "offline",
                )
                params.update(code=code, scope=" ".join(scopes), authuser="0", prompt="consent")
        separator = "&" if "?" in redirect_uri else "?"
        return 302, {"Location": redirect_uri + separator + urlencode(params)}, None

    def _client_authenticated(self, headers: Mapping[str, str], form: Mapping[str, str]) -> bool:
        """Accept client_secret_basic or client_secret_post, like Google."""
        client_id, secret = form.get("client_id"), form.get("client_secret")
        auth = headers.get("authorization", "")
        if auth.lower().startswith("basic "):
            try:
                decoded = base64.b64decode(auth[6:]).decode("latin-1")
            except ValueError:
                return False
            client_id, _, secret = decoded.partition(":")
        return (
            client_id == self.client_id
            and secret is not None
            and hmac.compare_digest(secret.encode(), self.client_secret.encode())
        )

    def _token(self, headers: Mapping[str, str], form: dict[str, str]) -> tuple[int, Any]:
        if not self._client_authenticated(headers, form):
            return 401, {"error": "invalid_client", "error_description": "Unauthorized"}
        grant_type = form.get("grant_type")
        with self._lock:
            if grant_type == "authorization_code":
                grant = self._state.codes.pop(form.get("code", ""), None)
                if grant is None or grant.redirect_uri != form.get("redirect_uri"):
                    return 400, {"error": "invalid_grant", "error_description": "Bad Request"}
                if not _pkce_ok(grant, form.get("code_verifier")):
                    return 400, {
                        "error": "invalid_grant",
                        "error_description": "Invalid code verifier.",
                    }
                refresh = "1//fake-" + secrets.token_urlsafe(32) if grant.offline else None
                if refresh is not None:
                    self._state.refresh_tokens[refresh] = grant
                return 200, self._issue(grant, refresh)
            if grant_type == "refresh_token":
                grant = self._state.refresh_tokens.get(form.get("refresh_token", ""))
                if grant is None:
                    return 400, {
                        "error": "invalid_grant",
                        "error_description": "Token has been expired or revoked.",
                    }
                return 200, self._issue(grant, None)
        return 400, {"error": "unsupported_grant_type"}

    def _issue(self, grant: _Grant, refresh_token: str | None) -> dict[str, Any]:
        """Mint an access token (and ID token) for a grant; caller holds the lock."""
        access = "ya29.fake-" + secrets.token_urlsafe(32)
        now = int(time.time())
        self._state.access_tokens[access] = _AccessToken(grant, now + self.access_token_lifetime)
        body: dict[str, Any] = {
            "access_token": access,
            "expires_in": self.access_token_lifetime,
            "scope": " ".join(grant.scopes),
            "token_type": "Bearer",
        }
        if refresh_token is not None:
            body["refresh_token"] = refresh_token
        if "openid" in grant.scopes:
            claims: dict[str, Any] = {
                "iss": self.issuer,
                "azp": grant.client_id,
                "aud": grant.client_id,
                "sub": grant.user.sub,
                "email": grant.user.email,
                "email_verified": grant.user.email_verified,
                "name": grant.user.name,
                "iat": now,
                "exp": now + 3600,
            }
            if grant.nonce is not None:
                claims["nonce"] = grant.nonce
            body["id_token"] = self.sign_id_token(claims)
        return body

    def _live_token(
        self, headers: Mapping[str, str], query: Mapping[str, str]
    ) -> _AccessToken | None:
        auth = headers.get("authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else query.get("access_token", "")
        with self._lock:
            found = self._state.access_tokens.get(token)
        if found is None or found.expires_at <= time.time():
            return None
        return found

    def _tokeninfo(self, token: _AccessToken) -> dict[str, Any]:
        """Google's tokeninfo: numbers and booleans as strings, scopes as full URIs."""
        grant, user = token.grant, token.grant.user
        body: dict[str, Any] = {
            "azp": grant.client_id,
            "aud": grant.client_id,
            "sub": user.sub,
            "scope": " ".join(grant.scopes),
            "exp": str(int(token.expires_at)),
            "expires_in": str(max(0, int(token.expires_at - time.time()))),
            "access_type": "offline" if grant.offline else "online",
        }
        if EMAIL_SCOPE in grant.scopes:
            body["email"] = user.email
            body["email_verified"] = "true" if user.email_verified else "false"
        return body

    def _userinfo(self, token: _AccessToken, *, v2: bool) -> dict[str, Any]:
        user = token.grant.user
        given, _, family = user.name.partition(" ")
        if v2:  # Google's legacy v2 shape: `id` and `verified_email`
            return {
                "id": user.sub,
                "email": user.email,
                "verified_email": user.email_verified,
                "name": user.name,
                "given_name": given,
                "family_name": family,
            }
        return {
            "sub": user.sub,
            "email": user.email,
            "email_verified": user.email_verified,
            "name": user.name,
            "given_name": given,
            "family_name": family,
        }

    def _dispatch(self, request: RecordedRequest) -> tuple[int, dict[str, str], Any]:
        path, method = request.path, request.method
        if method == "GET" and path == DISCOVERY_PATH:
            return 200, {}, self._discovery()
        if method == "GET" and path == JWKS_PATH:
            return 200, {}, KeySet([self._key]).as_dict(private=False)
        if method == "GET" and path == AUTHORIZE_PATH:
            return self._authorize(request.query)
        if method == "POST" and path == TOKEN_PATH:
            status, body = self._token(request.headers, request.form)
            return status, {}, body
        if path in (TOKENINFO_PATH, USERINFO_V1_PATH, USERINFO_V2_PATH):
            token = self._live_token(request.headers, {**request.query, **request.form})
            if token is None:
                if path == TOKENINFO_PATH:
                    return 400, {}, {"error": "invalid_token", "error_description": "Invalid Value"}
                return (
                    401,
                    {"WWW-Authenticate": 'Bearer error="invalid_token"'},
                    {"error": {"code": 401, "status": "UNAUTHENTICATED"}},
                )
            if path == TOKENINFO_PATH:
                return 200, {}, self._tokeninfo(token)
            return 200, {}, self._userinfo(token, v2=path == USERINFO_V2_PATH)
        return 404, {}, {"error": "not_found"}


def _pkce_ok(grant: _Grant, verifier: str | None) -> bool:
    if grant.code_challenge is None:
        return True
    if verifier is None:
        return False
    if (grant.code_challenge_method or "plain") == "S256":
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        computed = base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")
    else:
        computed = verifier
    return hmac.compare_digest(computed, grant.code_challenge)


class _Handler(BaseHTTPRequestHandler):
    """Translate stdlib HTTP requests into ``FakeGoogle._dispatch`` calls."""

    fake: ClassVar[FakeGoogle]
    protocol_version = "HTTP/1.0"  # one request per connection: nothing lingers at stop

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        split = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        form: dict[str, str] = {}
        if self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
            form = dict(parse_qsl(raw.decode(), keep_blank_values=True))
        request = RecordedRequest(
            method=method,
            path=split.path,
            query=dict(parse_qsl(split.query, keep_blank_values=True)),
            form=form,
            headers={k.lower(): v for k, v in self.headers.items()},
        )
        self.fake._record(request)
        status, headers, body = self.fake._dispatch(request)
        payload = b"" if body is None else json.dumps(body).encode()
        self.send_response(status, HTTPStatus(status).phrase)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Cache-Control", "no-store")
        if body is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Stay quiet: pytest shows captured output only on failure anyway."""
