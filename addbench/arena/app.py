"""The arena's routes (FastAPI). Every request is checked: the rater token (when the study has one), the Host
header (127.0.0.1 / localhost unless the server binds elsewhere), then the parameters (pydantic); a bad one gets a
4xx JSON ``{"error": ...}``. Images are served by schedule item (rater, position, side) and looked up in the loaded
runs by (run index, prompt_index, seed): no request names a file.

The token may come as ``?token=``, an ``X-Arena-Token`` header or the cookie a valid one sets (HttpOnly,
SameSite=Strict), so the page's own requests carry it. Routes: ``/`` (voting page), ``/results`` (results page), ``/static/*``, ``GET /api/study``, ``GET /api/next``,
``GET /api/image``, ``POST /api/vote``, ``GET /api/results``.
"""
from __future__ import annotations

import hmac
from pathlib import Path
from typing import Literal

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from addbench.arena.results import report
from addbench.arena.store import PositionConflict
from addbench.arena.study import QUESTIONS, Study

STATIC = Path(__file__).parent / "static"
RATER = r"^[A-Za-z0-9_.@-]{1,64}$"
Answer = Literal["left", "right", "tie"]
COOKIE = "addbench_arena_token"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")
HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
           "Content-Security-Policy": "default-src 'self'; img-src 'self'; object-src 'none'; base-uri 'none'"}


class VoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    rater: str = Field(pattern=RATER)
    position: int = Field(ge=0)
    quality: Answer
    alignment: Answer
    elapsed_ms: int | None = Field(None, ge=0, le=86_400_000)


def _error(status: int, message) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=HEADERS)


def _hostname(header: str) -> str:
    """``Host`` without its port (``[::1]:8000`` -> ``[::1]``)."""
    h = header.strip().lower()
    if h.startswith("["):
        return h.split("]", 1)[0] + "]"
    return h.rsplit(":", 1)[0]


def create_app(study: Study, token: str | None = None, allowed_hosts: tuple[str, ...] = LOCAL_HOSTS) -> FastAPI:
    """The app; ``allowed_hosts`` = Host header names accepted (``("*",)``: any)."""
    app = FastAPI(title="addbench arena", docs_url=None, redoc_url=None, openapi_url=None)
    hosts = {h.lower() for h in allowed_hosts}

    @app.middleware("http")
    async def guard(request: Request, call_next):
        host = _hostname(request.headers.get("host", ""))
        if "*" not in hosts and host not in hosts:
            return _error(400, f"unexpected Host header {host!r}")
        if token is not None:
            given = (request.headers.get("x-arena-token") or request.query_params.get("token")
                     or request.cookies.get(COOKIE) or "")
            if not hmac.compare_digest(given.encode(), token.encode()):
                return _error(401, "a valid rater token is required (?token=..., X-Arena-Token or the cookie)")
        response = await call_next(request)
        if token is not None and request.cookies.get(COOKIE) != token:  # the page's scripts, styles and images
            response.set_cookie(COOKIE, token, httponly=True, samesite="strict")
        for k, v in HEADERS.items():
            response.headers.setdefault(k, v)
        if request.url.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, exc.detail)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        return _error(422, [{"where": ".".join(map(str, e["loc"])), "message": e["msg"]} for e in exc.errors()])

    def item_or_404(rater: str, position: int):
        item = study.item(rater, position)
        if item is None:
            raise HTTPException(404, f"position {position} is outside the rater's schedule "
                                     f"(0..{study.total(rater) - 1})")
        return item

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC / "index.html")

    @app.get("/results", include_in_schema=False)
    def results_page():
        return FileResponse(STATIC / "results.html")

    @app.get("/api/study")
    def study_info():
        return {"questions": QUESTIONS, "models": len(study.runs), "keys": len(study.keys),
                "pairs": study.pairs, "controls_every": study.controls_every}

    @app.get("/api/next")
    def next_item(rater: str = Query(pattern=RATER)):
        position, total = study.store.next_position(rater), study.total(rater)
        out = {"rater": rater, "position": position, "total": total, "done": position >= total}
        if position < total:
            out["prompt"] = study.prompt(study.item(rater, position))
        return out

    @app.get("/api/image")
    def image(rater: str = Query(pattern=RATER), position: int = Query(ge=0),
              side: Literal["left", "right"] = Query()):
        return Response(study.image_png(item_or_404(rater, position), side), media_type="image/png",
                        headers={"Cache-Control": "private, max-age=3600"})

    @app.post("/api/vote")
    def vote(body: VoteIn):
        item = item_or_404(body.rater, body.position)
        try:
            study.vote(body.rater, item, {"quality": body.quality, "alignment": body.alignment}, body.elapsed_ms)
        except PositionConflict as exc:
            return _error(409, {"message": str(exc), "next": exc.expected})
        return {"ok": True, "next": body.position + 1, "total": study.total(body.rater)}

    @app.get("/api/results")
    def results(draws: int = Query(1000, ge=2, le=20000)):
        return report(study.store.votes(), study.max_fail, draws=draws, seed=study.seed)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
