"""The Starlette application: login, the pages and their files, and the pages' live channels.

Every route needs a logged-in session except the login page, its assets and logout. Pages
without a session are redirected to ``/login`` (which returns to them afterwards); other
requests get 401; WebSocket upgrades without a session, or from another site's page
(``Origin`` check), are refused.

Pages: ``/`` (the experimenter's), ``/feedback`` (the participant's feedback page) and
``/feedback/jspsych`` (an example jsPsych experiment with the rtcloud plugin, loading jsPsych
from ``/jspsych/`` when the server has a local copy, ``rtcloud serve --jspsych DIR``, else
from the unpkg CDN). The feedback pages are sent with a Content-Security-Policy that allows
scripts from this server only (and the CDN, for jsPsych): no inline script, no ``eval``.
No response may be shown in another page's frame (``X-Frame-Options: DENY`` and
``frame-ancestors 'none'`` on every response, feedback pages included).
"""

from __future__ import annotations

import asyncio
import html
import logging
import math
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from rtcloud.errors import AuthenticationError
from rtcloud.server.config import JSPSYCH_CDN_VERSION, JsPsychDist, is_loopback
from rtcloud.server.throttle import LoginThrottled

if TYPE_CHECKING:
    from rtcloud.server.server import ProjectServer

__all__ = ["COOKIE_NAME", "DEVICE_COOKIE", "bearer_token", "create_app"]

logger = logging.getLogger(__name__)

COOKIE_NAME = "rtcloud_session"
#: The login form's largest body (a user name, a password up to bcrypt's 72 bytes, a path).
LOGIN_FORM_MAX_BYTES = 16 * 1024
#: A device token (see rtcloud.server.auth.DeviceTokens), sent only to /login.
DEVICE_COOKIE = "rtcloud_device"
PUBLIC_PREFIXES = ("/login", "/logout", "/assets/")
#: The only files served without a session: what the login page itself needs.
PUBLIC_ASSETS = frozenset({"login.css", "favicon.svg"})
#: Paths that authenticate on their own (the remote services' sockets: a bearer session, no
#: cookie, no Origin; see ProjectServer._service_socket).
SELF_AUTHENTICATED = ("/ws/service/",)
#: Paths of files and data (not pages): 401 rather than a redirect to the login page.
NOT_PAGES = ("/static/", "/api/", "/jspsych/")

_CDN = f"https://unpkg.com/jspsych@{JSPSYCH_CDN_VERSION}"
#: Subresource integrity of the CDN files: sha384 of the files of the npm package
#: jspsych@7.3.4 (unpkg serves the package's files unchanged), so a changed file is refused.
_CDN_JS = (
    f"{_CDN}/dist/index.browser.min.js",
    "sha384-XAUySaEe2MZZhTzbstOfwmVuzWlsblgOwTje2VO+r73k+MzUbgzn/AwQlxq7OdCi",
)
_CDN_CSS = (
    f"{_CDN}/css/jspsych.css",
    "sha384-F1pvd1ZCaxuJalclhLrJj8A5LWkFVuFinaHeIgOZXnnCGt7HAbSPzTw7fO3qeJ8F",
)


def page_policy(*extra_origins: str) -> str:
    """The Content-Security-Policy of a feedback page: this server's scripts only, no eval."""
    extra = "".join(f" {origin}" for origin in extra_origins)
    return (
        "default-src 'self'; "
        f"script-src 'self'{extra}; "
        f"style-src 'self' 'unsafe-inline'{extra}; "
        f"img-src 'self' data:; font-src 'self' data:{extra}; connect-src 'self'; "
        "object-src 'none'; base-uri 'none'; "
        "frame-ancestors 'none'; form-action 'self'"
    )


def attr(value: str) -> str:
    """``value`` escaped for an HTML attribute (or text)."""
    return html.escape(value, quote=True)


def jspsych_page(template: str, dist: JsPsychDist | None) -> str:
    """The jsPsych example page, loading jsPsych from ``dist`` (served at /jspsych/) or the CDN."""
    if dist is not None:
        version = f"jsPsych {dist.version}" if dist.version else "jsPsych"
        source, script = "local", f"/jspsych/{dist.script}"
        js_tag = f'<script src="{attr(script)}"></script>'
        css_tag = f'<link rel="stylesheet" href="/jspsych/{attr(dist.css)}">' if dist.css else ""
        note = f"{version} served by this rtcloud server (/jspsych/, from --jspsych)"
    else:
        source, script = "cdn", _CDN_JS[0]
        js_tag = (
            f'<script src="{attr(_CDN_JS[0])}" integrity="{attr(_CDN_JS[1])}" '
            'crossorigin="anonymous"></script>'
        )
        css_tag = (
            f'<link rel="stylesheet" href="{attr(_CDN_CSS[0])}" integrity="{attr(_CDN_CSS[1])}" '
            'crossorigin="anonymous">'
        )
        note = (
            f"jsPsych {JSPSYCH_CDN_VERSION} loaded from unpkg.com (needs internet; offline labs: "
            "rtcloud serve --jspsych DIR)"
        )
    values = {
        "jspsych_js_tag": js_tag,  # built above from escaped values
        "jspsych_css_tag": css_tag,
        "source": attr(source),
        "jspsych_js": attr(script),
        "note": attr(note),
    }
    for key, value in values.items():
        template = template.replace("{{" + key + "}}", value)
    return template


def web_dir() -> Path:
    return Path(str(resources.files("rtcloud") / "web"))


def plotly_js() -> Path:
    import plotly

    path = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    return path


def safe_next(target: str | None) -> str:
    """Only local paths may be redirect targets (no ``//host`` or ``scheme:``)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _is_page_request(path: str, conn: HTTPConnection) -> bool:
    """A browser opening a page (redirected to the login), not a file or data request (401).

    Under /jspsych/ both live: a lab may keep its own experiment page next to jsPsych.
    """
    if not path.startswith(NOT_PAGES):
        return True
    return path.startswith("/jspsych/") and "text/html" in conn.headers.get("accept", "")


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer TOKEN`` header, else None."""
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def origin_allowed(conn: HTTPConnection) -> bool:
    """A WebSocket upgrade from a browser must come from this server's own page."""
    origin = conn.headers.get("origin")
    if origin is None:
        return True  # not a browser: services authenticate on their own
    host = conn.headers.get("host", "")
    parts = urlsplit(origin)
    return bool(parts.netloc) and parts.netloc.lower() == host.lower()


#: Sent with every response. No page of this server may be framed by another page (a framed
#: experimenter page would let another site trick a click on Run); responses that carry a
#: fuller Content-Security-Policy (the feedback pages) say ``frame-ancestors 'none'`` in it.
SECURITY_HEADERS = (
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)
FRAME_POLICY = (b"content-security-policy", b"frame-ancestors 'none'")


class SecurityHeaders:
    """ASGI middleware: the headers above on every HTTP response, whoever made it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers += [h for h in SECURITY_HEADERS if h[0] not in names]
                if FRAME_POLICY[0] not in names:
                    headers.append(FRAME_POLICY)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


class LoopbackHostOnly:
    """ASGI middleware of a server that listens on loopback: only requests addressed to a
    loopback name (``127.0.0.1``, ``localhost``, ``[::1]``) are answered.

    A web page elsewhere can point a name of its own at 127.0.0.1 (DNS rebinding); the
    browser then sends that name as the Host, and the page would be on this server's origin:
    able to log in with ``--test``'s known password, read the page's API and run scripts.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            host = HTTPConnection(scope).headers.get("host", "")
            try:
                name = urlsplit(f"//{host}").hostname or ""
            except ValueError:
                name = ""
            if not is_loopback(name):
                logger.warning("refused a request addressed to %r (not this computer)", host)
                if scope["type"] == "websocket":
                    await WebSocket(scope, receive, send).close(code=4421)
                    return
                response = PlainTextResponse(
                    "this server answers only requests addressed to 127.0.0.1, localhost or [::1]",
                    status_code=421,
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


class AuthGate:
    """ASGI middleware: a valid session for everything but the public paths."""

    def __init__(self, app: ASGIApp, server: ProjectServer) -> None:
        self.app = app
        self.server = server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith(PUBLIC_PREFIXES) or path.startswith(SELF_AUTHENTICATED):
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        user = self.server.sessions.user_of(conn.cookies.get(COOKIE_NAME))
        if scope["type"] == "websocket":
            if user is None or not origin_allowed(conn):
                logger.warning("refused a WebSocket to %s (no session or foreign origin)", path)
                ws = WebSocket(scope, receive, send)
                await ws.close(code=4401)
                return
        elif user is None:
            response: Response
            if scope["method"] == "GET" and _is_page_request(path, conn):
                query = scope.get("query_string", b"").decode("latin-1")
                target = f"{path}?{query}" if query else path
                response = RedirectResponse(
                    f"/login?next={quote(target, safe='/')}", status_code=303
                )
            else:
                response = PlainTextResponse("log in first", status_code=401)
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["user"] = user
        if scope["type"] == "websocket":
            await self._while_session(scope, receive, send, conn.cookies.get(COOKIE_NAME))
            return
        await self.app(scope, receive, send)

    async def _while_session(
        self, scope: Scope, receive: Receive, send: Send, cookie: str | None
    ) -> None:
        """Run a page's WebSocket while its session lasts. When the session ends (logout,
        a changed password, expiry) the socket is closed with 4401 and the page's handler
        is told the client left, so an open page stops receiving the experiment at once."""
        ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def watch() -> None:
            await self.server.sessions.until_ended(cookie)
            ended.set_result(None)

        async def guarded_receive() -> Message:
            if not ended.done():
                got = asyncio.ensure_future(receive())
                either: set[asyncio.Future[Any]] = {got, ended}
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
                if got.done():
                    return got.result()
                got.cancel()
            logger.info("closed a page's socket: its session ended")
            await send({"type": "websocket.close", "code": 4401, "reason": "session ended"})
            return {"type": "websocket.disconnect", "code": 4401}

        watcher = asyncio.create_task(watch())
        try:
            await self.app(scope, guarded_receive, send)
        finally:
            watcher.cancel()


def create_app(server: ProjectServer) -> ASGIApp:
    """The web application of one project server."""
    webdir = web_dir()

    def login_page(
        error: str = "", next_path: str = "/", status: int = 200, username: str = ""
    ) -> HTMLResponse:
        text = (webdir / "login.html").read_text(encoding="utf-8")
        text = text.replace("{{error}}", html.escape(error)).replace(
            "{{next}}", html.escape(next_path, quote=True)
        )
        # After a wrong password the name stays, and the cursor waits in the password field.
        text = text.replace("{{username}}", html.escape(username, quote=True))
        text = text.replace("{{username_focus}}", "" if username else "autofocus")
        text = text.replace("{{password_focus}}", "autofocus" if username else "")
        return HTMLResponse(text, status_code=status, headers={"Cache-Control": "no-store"})

    def logged_in(user: str, target: str | None, known_device: bool = False) -> Response:
        response = RedirectResponse(safe_next(target), status_code=303)
        response.set_cookie(
            COOKIE_NAME,
            server.sessions.sign(user),
            max_age=int(server.sessions.max_age),
            httponly=True,
            samesite="strict",
            secure=server.uses_tls,
            path="/",
        )
        if not known_device:
            response.set_cookie(
                DEVICE_COOKIE,
                server.devices.issue(user),
                max_age=int(server.devices.lifetime),
                httponly=True,
                samesite="strict",
                secure=server.uses_tls,
                path="/login",
            )
        return response

    async def login_get(request: Request) -> Response:
        token = request.query_params.get("token")
        if token:
            try:
                user = server.tokens.redeem(token)
            except AuthenticationError as exc:
                return login_page(str(exc), "/", status=401)
            logger.info("user %s logged in with the one-time link", user)
            return logged_in(user, request.query_params.get("next"))
        return login_page("", safe_next(request.query_params.get("next")))

    async def login_post(request: Request) -> Response:
        # the login page posts a small url-encoded form; anything else is refused before it
        # is read (a stranger's multipart body would be held in memory or on disk)
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            return PlainTextResponse("the login takes a url-encoded form", status_code=415)
        length = request.headers.get("content-length", "")
        if not length.isdigit():
            return PlainTextResponse("the login needs a Content-Length", status_code=411)
        if int(length) > LOGIN_FORM_MAX_BYTES:
            return PlainTextResponse("the login form is too large", status_code=413)
        form = await request.form(max_files=0, max_fields=8, max_part_size=LOGIN_FORM_MAX_BYTES)
        user = str(form.get("username") or "").strip()
        password = str(form.get("password") or "")
        target = safe_next(str(form.get("next") or "/"))
        client = request.client.host if request.client else "?"
        # A device that logged in as this user before waits in its own queue; everyone
        # else queues per address and per user name (rtcloud.server.throttle).
        device = server.devices.device_of(request.cookies.get(DEVICE_COOKIE), user)
        keys = (f"device:{device}",) if device else (f"ip:{client}", f"user:{user}")
        try:
            wait = server.throttle.reserve(*keys)
        except LoginThrottled as exc:
            retry = max(1, math.ceil(exc.retry_after))
            logger.warning(
                "refused a login for %s from %s: %s", server.user_label(user), client, exc
            )
            response = login_page(
                f"Too many failed logins; try again in {retry} s.", target, status=429
            )
            response.headers["Retry-After"] = str(retry)
            return response
        if wait:
            await server.clock.sleep(wait)
        ok = await asyncio.to_thread(server.check_password, user, password)
        if not ok:
            logger.warning("failed login for %s from %s", server.user_label(user), client)
            return login_page("Wrong user name or password.", target, status=401, username=user)
        server.throttle.succeeded(*keys)
        logger.info("user %s logged in from %s", user, client)
        return logged_in(user, target, known_device=device is not None)

    async def logout(request: Request) -> Response:
        if not origin_allowed(request):
            # another site (another port of this computer counts as the same site for the
            # cookie) must not end the experimenter's session in the middle of a scan
            return PlainTextResponse("log out from this server's own page", status_code=403)
        server.sessions.end(request.cookies.get(COOKIE_NAME))  # a copied cookie ends too
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE_NAME, path="/")
        return response

    async def index(request: Request) -> Response:
        return FileResponse(webdir / "index.html", headers={"Cache-Control": "no-store"})

    async def assets(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in PUBLIC_ASSETS:
            return PlainTextResponse("not found", status_code=404)
        return FileResponse(webdir / name)

    async def feedback(request: Request) -> Response:
        return FileResponse(
            webdir / "feedback.html",
            headers={"Cache-Control": "no-store", "Content-Security-Policy": page_policy()},
        )

    async def feedback_jspsych(request: Request) -> Response:
        dist = server.config.jspsych_dist
        text = jspsych_page((webdir / "feedback-jspsych.html").read_text(encoding="utf-8"), dist)
        policy = page_policy() if dist is not None else page_policy("https://unpkg.com")
        return HTMLResponse(
            text, headers={"Cache-Control": "no-store", "Content-Security-Policy": policy}
        )

    async def no_jspsych(request: Request) -> Response:
        return PlainTextResponse(
            "this server has no local jsPsych; start it with rtcloud serve --jspsych DIR",
            status_code=404,
        )

    async def api_session(request: Request) -> Response:
        from starlette.responses import JSONResponse

        return JSONResponse({"user": request.scope.get("state", {}).get("user")})

    async def plotly(request: Request) -> Response:
        return FileResponse(plotly_js(), media_type="text/javascript")

    async def api_config(request: Request) -> Response:
        from starlette.responses import JSONResponse

        return JSONResponse(server.config_state())

    async def api_upload(request: Request) -> Response:
        from starlette.responses import JSONResponse

        if request.method == "GET":
            return JSONResponse(await server.uploads.describe())
        if not origin_allowed(request):  # a form on another site cannot post files here
            return JSONResponse({"error": "uploads come from this server's page"}, 403)
        user = request.scope.get("state", {}).get("user", "?")
        return await server.uploads.receive(request, user)

    async def ui_socket(ws: WebSocket) -> None:
        user = ws.scope.get("state", {}).get("user", "?")
        await server.ui.serve(ws, lambda sock, msg: server.handle_ui(sock, msg, user))

    routes: list[Any] = [
        Route("/login", login_get, methods=["GET"]),
        Route("/login", login_post, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),  # a GET (an <img> elsewhere) must not
        Route("/", index),
        Route("/static/plotly.min.js", plotly),
        Route("/api/config", api_config),
        Route("/api/session", api_session),
        Route("/api/upload", api_upload, methods=["GET", "POST"]),
        Route("/feedback", feedback),
        Route("/feedback/jspsych", feedback_jspsych),
        WebSocketRoute("/ws/ui", ui_socket),
        Mount("/static", StaticFiles(directory=webdir), name="static"),
        Route("/assets/{name}", assets),
    ]
    dist = server.config.jspsych_dist
    if dist is not None:  # read-only (GET/HEAD), inside the folder only, behind the login
        routes.append(Mount("/jspsych", StaticFiles(directory=dist.root), name="jspsych"))
    else:
        routes.append(Route("/jspsych/{path:path}", no_jspsych))
    routes.extend(server.extra_routes())
    app = Starlette(routes=routes, lifespan=server.lifespan)
    gated: ASGIApp = SecurityHeaders(AuthGate(app, server))
    return LoopbackHostOnly(gated) if is_loopback(server.config.host) else gated
