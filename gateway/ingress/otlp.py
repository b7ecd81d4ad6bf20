"""OTLP/HTTP trace receivers: HoneyHive's ``/opentelemetry/v1/traces`` and the generic
``/v1/traces``; protobuf or JSON, gzip accepted, answered as an OTLP receiver answers
(200 with partial success counting refused spans; errors as google.rpc.Status)."""
import orjson
from aiohttp import web

from mappings import otlp
from mappings.errors import MappingError

from ..auth import bearer
from ..store import Backpressure
from .common import HttpError, read_body, submit
from .state import STATE

PROTOBUF_TYPES = ("application/x-protobuf", "application/protobuf")


def _respond(status: int, body: bytes, protobuf: bool, headers: dict | None = None) -> web.Response:
    return web.Response(status=status, body=body, headers=headers,
                        content_type="application/x-protobuf" if protobuf else "application/json")


def _receiver(dialect: str):
    async def receive(request: web.Request) -> web.Response:
        protobuf = request.content_type in PROTOBUF_TYPES
        try:
            if not protobuf and request.content_type != "application/json":
                raise HttpError(415, f"Content-Type: expected application/x-protobuf or application/json, "
                                     f"got {request.content_type!r}")
            state = request.app[STATE]
            tenant = state.auth.tenant(dialect, bearer(request.headers.get("Authorization")))
            if tenant is None:
                raise HttpError(401, "Invalid API key")
            parsed = otlp.parse_request(await read_body(request, tenant), request.content_type)
            await submit(request, tenant, parsed)
        except HttpError as exc:
            return _respond(exc.status, otlp.error_answer(exc.message, protobuf), protobuf, exc.headers)
        except MappingError as exc:
            return _respond(400, otlp.error_answer(str(exc), protobuf), protobuf)
        except Backpressure as exc:
            return _respond(503, otlp.error_answer(str(exc), protobuf, code=14), protobuf,
                            {"Retry-After": str(exc.retry_after)})
        status, body = otlp.answer(parsed, protobuf)
        return _respond(status, body if protobuf else orjson.dumps(body), protobuf)

    return receive


def routes() -> list[web.RouteDef]:
    return [
        web.post("/opentelemetry/v1/traces", _receiver("honeyhive")),
        web.post("/v1/traces", _receiver("otlp")),
    ]
