"""`llmpipe serve`: a model over HTTP in MLflow's scoring protocol (POST /invocations with one of
dataframe_split, dataframe_records, inputs or instances, and `params`; GET /ping, /health and
/version), on Starlette and uvicorn.

Not `mlflow models serve`: its server runs each prediction in a thread that nothing can stop, so a
request that generates for ever keeps a core after its client has gone and after its 504, and
SIGTERM waits for it; its errors carry a stack trace; and it would answer with the code logged with
each version, so a version registered before the limits would never get them. Here the installed
llmpipe answers (serving.py, on the version's checked weights): each request is checked before any
work, in the event loop (a 4xx naming the parameter, even while every worker is busy); its work runs
in a worker thread that checks a Stop between tokens; the Stop is cancelled when the client
disconnects, when the server is stopping (SIGTERM, SIGINT) and when serve.request_seconds pass (504).
Every error is JSON {"error_code", "message"} without a stack trace; an internal one is logged here
with its trace."""

import asyncio
import json
import logging

import pandas as pd
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from llmpipe.registry.limits import BadRequest, Stop, TimeLimit, TooLarge, body_limit, too_many_rows
from llmpipe.registry.serving import ExportModel
from llmpipe.schema import Serve

log = logging.getLogger(__name__)

# MLflow's input formats (one per request) and the shape each holds
SHAPES = {
    "dataframe_split": '{"columns": [...], "data": [[...], ...]}',
    "dataframe_records": "[{column: value}, ...]",
    "inputs": "{column: [values]} or [{column: value}, ...]",
    "instances": "{column: [values]} or [{column: value}, ...]",
}
POLL_SECONDS = 0.1  # how often a running request looks for its client, the server's stop and the clock
# After SIGTERM, uvicorn waits this long for requests to end before it cancels them. Ours end at
# once (they see the server stopping), so this only bounds a request stuck outside the token loop.
GRACE_SECONDS = 3


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error_code": code, "message": message}, status_code=status)


async def ping(request: Request) -> Response:
    return Response("\n", media_type="application/json")


async def version(request: Request) -> Response:
    import mlflow

    return Response(mlflow.__version__, media_type="application/json")  # what MLflow's server answers


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body, refused as soon as it passes `limit` bytes (before it is all in memory)."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            allowed = "the most that serve.max_rows texts of serve.max_prompt_chars characters take"
            raise TooLarge([("body", f"over {limit} bytes, {allowed}")])
    return bytes(body)


def request_frame(body: bytes, limits: Serve) -> tuple[pd.DataFrame, object]:
    """The rows and the `params` of an MLflow scoring request."""
    try:
        request = json.loads(body)
    except ValueError as err:  # not JSON, or not UTF-8
        raise BadRequest([("body", f"not JSON ({err})")]) from None
    except RecursionError:
        raise BadRequest([("body", "JSON nested too deeply")]) from None
    if not isinstance(request, dict):
        raise BadRequest([("body", f"expected a JSON object holding one of {list(SHAPES)} and `params`")])
    problems = [(str(k), "unknown field") for k in request if k not in SHAPES and k != "params"]
    given = [k for k in SHAPES if k in request]
    if len(given) != 1:
        problems.append(("body", f"expected exactly one of {list(SHAPES)}, got {given}"))
    if problems:
        raise BadRequest(problems)
    key = given[0]
    try:
        return table(key, request[key], limits), request.get("params")
    except BadRequest:
        raise
    except (ValueError, TypeError) as err:  # pandas' own: columns that do not fit the rows
        raise BadRequest([(key, f"not a table ({err})")]) from None


def table(key: str, data, limits: Serve) -> pd.DataFrame:
    """A DataFrame from one of MLflow's input formats, its rows counted before it is made."""
    if key == "dataframe_split" and isinstance(data, dict) and isinstance(data.get("data"), list):
        refuse_rows(len(data["data"]), key, limits)
        return pd.DataFrame(data["data"], columns=data.get("columns"))
    if key in ("inputs", "instances") and isinstance(data, dict):  # by column
        columns = {k: v if isinstance(v, list) else [v] for k, v in data.items()}
        refuse_rows(max(map(len, columns.values()), default=0), key, limits)
        return pd.DataFrame(columns)
    if key != "dataframe_split" and isinstance(data, list) and all(isinstance(row, dict) for row in data):
        refuse_rows(len(data), key, limits)
        return pd.DataFrame(data)
    raise BadRequest([(key, f"expected {SHAPES[key]}")])


def refuse_rows(rows: int, key: str, limits: Serve):
    if rows > limits.max_rows:
        raise BadRequest([(key, too_many_rows(rows, limits))])


async def invocations(request: Request) -> Response:
    model: ExportModel = request.app.state.model
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "application/json":
        return error(415, "BAD_REQUEST", f"Content-Type: {content_type!r:.60} is not served; send application/json")
    try:
        frame, params = request_frame(await read_body(request, body_limit(model.limits)), model.limits)
        texts, options = model.check(frame, params)
    except BadRequest as err:
        return error(err.status, err.error_code, str(err))
    return await answer(request, model, texts, options)


def outcome_seen(work: asyncio.Future):
    """Mark the outcome of work as seen: a request that ended first (its client gone, the server
    stopping) never reads it, and asyncio would log it as lost."""
    if not work.cancelled():
        work.exception()


async def answer(request: Request, model: ExportModel, texts: list[str], options: dict) -> Response:
    """The model's answer, its work in a worker thread that stops when the client goes, when the
    server stops or when serve.request_seconds pass: no work outlives its request (the finally)."""
    stop = Stop(model.limits.request_seconds)
    work = asyncio.ensure_future(asyncio.to_thread(model.answer, texts, options, stop))
    work.add_done_callback(outcome_seen)
    try:
        while not work.done():
            if await request.is_disconnected():
                return Response(status_code=499)  # nginx's "client closed request": nobody reads it
            if request.app.state.stopping():
                return error(503, "TEMPORARILY_UNAVAILABLE", "the server is stopping: the request was cancelled")
            if stop.out_of_time():  # the worker stops at its next step; the client is answered now
                return error(504, "DEADLINE_EXCEEDED", str(TimeLimit(stop.seconds)))
            await asyncio.wait([work], timeout=POLL_SECONDS)
        predictions = work.result()
    except TimeLimit as err:
        return error(504, "DEADLINE_EXCEEDED", str(err))
    except BadRequest as err:
        return error(err.status, err.error_code, str(err))
    except Exception:
        log.exception("the model failed on a request")
        return error(500, "INTERNAL_ERROR", "the model failed on this request; the server's log has the details")
    finally:
        stop.cancel()
    return JSONResponse({"predictions": predictions.to_dict(orient="records")})


def build_app(model: ExportModel) -> Starlette:
    routes = [
        Route("/ping", ping),
        Route("/health", ping),
        Route("/version", version),
        Route("/invocations", invocations, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.model = model
    app.state.stopping = lambda: False  # serve() asks uvicorn instead
    return app


def serve(model: ExportModel, host: str, port: int) -> int:
    """Serve until SIGTERM or SIGINT: uvicorn stops taking connections, the running requests see
    `stopping` and end at their next token, and the process exits."""
    import uvicorn

    from llmpipe.logs import setup_logging

    setup_logging()  # our own lines (an internal error's trace) beside uvicorn's
    app = build_app(model)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, timeout_graceful_shutdown=GRACE_SECONDS))
    app.state.stopping = lambda: server.should_exit  # set by uvicorn's signal handler
    server.run()
    return 0
