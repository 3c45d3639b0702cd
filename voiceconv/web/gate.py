"""The door of a page with a password: a visitor without credentials gets the login form and nothing more, and a
client that keeps guessing passwords is locked out for longer and longer.

:class:`LoginGate` is an ASGI middleware inside gradio's app (``launch(app_kwargs={"middleware": ...})``, see
:func:`gate_middleware`). Without a valid login cookie a request may fetch only the login page (with gradio's
description of the API taken out of it: no endpoint and no model name), the files its form is drawn with, and
``POST /login``; everything else is answered ``401``. Logins go through :class:`LoginThrottle`, per client address.
"""

from __future__ import annotations

import json
import math
import re
import threading
import time
from collections.abc import Callable

FREE_ATTEMPTS = 5  # wrong logins in a row a client may make before the first lock-out
FIRST_LOCK_SECONDS = 1.0  # the first lock-out; each further wrong login doubles it
MAX_LOCK_SECONDS = 900.0  # the longest lock-out (15 minutes)
FORGET_SECONDS = 24 * 3600.0  # a client's wrong logins are forgotten this long after its last one
MAX_CLIENTS = 10_000  # clients remembered at once (the oldest are forgotten first)

#: What the login form needs without credentials: gradio's scripts, styles and icons; and the call gradio makes on
#: itself when it starts (it says only whether that was the first call).
PUBLIC_PREFIXES = ("/assets/", "/static/", "/svelte/")
PUBLIC_PATHS = {"/theme.css", "/gradio_api/theme.css", "/favicon.ico", "/robots.txt", "/gradio_api/login_check",
                "/gradio_api/login_check/", "/gradio_api/startup-events"}
LOGIN_PATHS = {"/login", "/login/", "/gradio_api/login", "/gradio_api/login/"}
PAGE_PATHS = {"/", ""}
EMPTY_API_INFO = b'window.gradio_api_info = {"named_endpoints": {}, "unnamed_endpoints": {}};</script>'
_API_INFO = re.compile(rb"window\.gradio_api_info = .*?;</script>", re.DOTALL)


class LoginThrottle:
    """Wrong logins counted per client: the first ``free_attempts`` are free, then each one locks the client out
    for ``first_lock_seconds``, doubled with every further one up to ``max_lock_seconds``. During a lock-out no
    password is checked, the right one included; a right one afterwards clears the count. Thread-safe."""

    def __init__(self, free_attempts: int = FREE_ATTEMPTS, first_lock_seconds: float = FIRST_LOCK_SECONDS,
                 max_lock_seconds: float = MAX_LOCK_SECONDS, clock: Callable[[], float] = time.monotonic):
        self.free_attempts, self.first_lock, self.max_lock = free_attempts, first_lock_seconds, max_lock_seconds
        self.clock = clock
        self._clients: dict[str, tuple[int, float, float]] = {}  # client -> (attempts, locked until, last attempt)
        self._lock = threading.Lock()

    def begin(self, client: str) -> float:
        """A login attempt from ``client`` starts: 0 when it may go ahead (it counts as wrong until
        :meth:`succeeded` says otherwise), else the seconds its lock-out still lasts (refused, not counted)."""
        with self._lock:
            now = self.clock()
            attempts, locked_until, _ = self._clients.get(client, (0, 0.0, now))
            if now < locked_until:
                return locked_until - now
            attempts += 1
            if attempts >= self.free_attempts:
                locked_until = now + self.lock_seconds(attempts)
            self._forget_old(now)
            self._clients[client] = (attempts, locked_until, now)
            return 0.0

    def succeeded(self, client: str) -> None:
        """The attempt's password was right: the client starts afresh."""
        with self._lock:
            self._clients.pop(client, None)

    def lock_seconds(self, attempts: int) -> float:
        """How long ``attempts`` wrong logins in a row lock a client out (0 below ``free_attempts``)."""
        if attempts < self.free_attempts:
            return 0.0
        return min(self.first_lock * 2.0 ** min(attempts - self.free_attempts, 64), self.max_lock)

    def _forget_old(self, now: float) -> None:
        if len(self._clients) < MAX_CLIENTS:
            return
        for client, (_, locked_until, last) in list(self._clients.items()):
            if now - last > FORGET_SECONDS and now >= locked_until:
                del self._clients[client]
        for client in sorted(self._clients, key=lambda c: self._clients[c][2])[:len(self._clients) - MAX_CLIENTS + 1]:
            del self._clients[client]


class LoginGate:
    """ASGI middleware: requests without a valid login reach only the login page, its assets and the throttled
    ``POST /login``, when gradio's app has a password (``app.auth``); otherwise it passes everything on."""

    def __init__(self, app, throttle: LoginThrottle | None = None):
        self.app, self.throttle = app, throttle or LoginThrottle()

    async def __call__(self, scope, receive, send) -> None:
        gradio_app = scope.get("app")
        if scope["type"] not in ("http", "websocket") or getattr(gradio_app, "auth", None) is None \
                or _signed_in(scope, gradio_app):
            await self.app(scope, receive, send)
            return
        path, method = _path(scope), scope.get("method", "GET")
        if path in LOGIN_PATHS and method == "POST":
            await self._login(scope, receive, send)
        elif path in PAGE_PATHS and method in ("GET", "HEAD"):
            await self._login_page(scope, receive, send)
        elif path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES):
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
        else:
            await _respond(send, 401, {"detail": "Not authenticated"})

    async def _login(self, scope, receive, send) -> None:
        """gradio's login, refused with 429 during a lock-out; its answer tells the throttle how it went."""
        client = _client(scope)
        wait = self.throttle.begin(client)
        if wait > 0:
            seconds = math.ceil(wait)
            await _respond(send, 429, {"detail": f"Too many wrong logins from this address; try again in {seconds} s."},
                           [(b"retry-after", str(seconds).encode())])
            return

        async def watched(message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 200:
                self.throttle.succeeded(client)
            await send(message)

        await self.app(scope, receive, watched)

    async def _login_page(self, scope, receive, send) -> None:
        """gradio's login page without ``window.gradio_api_info`` (the endpoints, their parameters, model names)."""
        start, body = None, []

        async def held(message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
            elif message["type"] == "http.response.body":
                body.append(message.get("body", b""))
                if not message.get("more_body", False):
                    await _send_page(send, start, _API_INFO.sub(EMPTY_API_INFO, b"".join(body)))
            else:
                await send(message)

        await self.app(scope, receive, held)


def gate_middleware() -> list:
    """``launch(app_kwargs={"middleware": gate_middleware()})``: the login gate with a fresh throttle."""
    from starlette.middleware import Middleware

    return [Middleware(LoginGate, throttle=LoginThrottle())]


def _signed_in(scope, gradio_app) -> bool:
    """Whether the request carries one of gradio's login cookies for a live session (as gradio's own check)."""
    cookies = _cookies(scope)
    cookie_id = getattr(gradio_app, "cookie_id", "")
    tokens = getattr(gradio_app, "tokens", {})
    return any(cookies.get(f"{name}-{cookie_id}") in tokens for name in ("access-token", "access-token-unsecure"))


def _cookies(scope) -> dict[str, str]:
    from http.cookies import SimpleCookie

    jar = SimpleCookie()
    for name, value in scope.get("headers", []):
        if name == b"cookie":
            try:
                jar.load(value.decode("latin-1"))
            except Exception:  # noqa: BLE001 - a malformed cookie header is no login
                return {}
    return {key: morsel.value for key, morsel in jar.items()}


def _path(scope) -> str:
    path, root = scope.get("path", "/"), scope.get("root_path", "")
    return path[len(root):] if root and path.startswith(root) else path


def _client(scope) -> str:
    client = scope.get("client")
    return client[0] if client else "unknown"


async def _respond(send, status: int, payload: dict, headers: list | None = None) -> None:
    body = json.dumps(payload).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *(headers or [])]})
    await send({"type": "http.response.body", "body": body})


async def _send_page(send, start: dict, body: bytes) -> None:
    headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
    await send({**start, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
