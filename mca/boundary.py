"""Theory of operation: the one door every gRPC call comes through.

``Boundary`` is a server interceptor installed on every listener (replicas and agents). Before a
handler runs, it

* **authenticates**: the caller is the principal named by its TLS client certificate (``mca.tls``;
  the listener refuses a handshake without one from this cluster's CA), never a field of the
  request. A replica relaying a client's call names that client in ``ON_BEHALF_OF``, and that
  metadata is believed from a replica's certificate only;
* **authorizes** by role: which roles may call each service (``serves``); anyone else gets
  ``PERMISSION_DENIED``, a certificate whose name is no principal ``UNAUTHENTICATED``;
* **decodes** the request itself, so that a corrupt body is ``INVALID_ARGUMENT`` with a message,
  not gRPC's ``UNKNOWN`` from a failing deserializer;
* and makes sure no handler's bug leaves as ``UNKNOWN``: an unexpected exception is logged with
  the peer and answered ``INTERNAL``.

Handlers read the caller with ``caller()`` (a context variable set for the call's task). Refusals
are counted through ``refused(reason)`` and logged with the peer's address and principal.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, NoReturn

import grpc
from google.protobuf.message import DecodeError

from mca.tls import CredentialError, Principal

log = logging.getLogger(__name__)

#: Metadata of a call a replica relays for a client: the client's principal, as UTF-8 bytes (a
#: binary header: a name may hold any printable character, a text header only ASCII).
ON_BEHALF_OF = "mca-on-behalf-of-bin"

_CALLER: contextvars.ContextVar[Principal] = contextvars.ContextVar("mca_caller")


def caller() -> Principal:
    """The authenticated principal of the call being handled."""
    return _CALLER.get()


class Boundary(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """``serves``: full service name -> the roles that may call it. A service not named (health
    checking, reflection) is open to every authenticated principal."""

    def __init__(self, serves: Mapping[str, frozenset[str]], refused: Callable[[str], None] | None = None) -> None:
        self._serves = dict(serves)
        self._refused = refused or (lambda reason: None)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(details)
        if handler is None:
            return handler  # unknown method: UNIMPLEMENTED
        service = details.method.rsplit("/", 2)[-2]
        roles = self._serves.get(service)
        metadata = dict(details.invocation_metadata or ())
        on_behalf = metadata.get(ON_BEHALF_OF)
        if isinstance(on_behalf, bytes):
            on_behalf = on_behalf.decode("utf-8", "replace")
        decode = handler.request_deserializer
        door = _Door(self, roles, on_behalf if isinstance(on_behalf, str) else None, decode, details.method)
        if handler.unary_unary is not None:
            return handler._replace(request_deserializer=None, unary_unary=door.unary(handler.unary_unary))
        if handler.unary_stream is not None:
            return handler._replace(request_deserializer=None, unary_stream=door.stream(handler.unary_stream))
        if handler.stream_stream is not None and roles is not None:  # ours: each message decoded here
            return handler._replace(request_deserializer=None, stream_stream=door.bidi(handler.stream_stream))
        # A stream of requests (server reflection): checked who calls, the messages decoded by gRPC.
        door = _Door(self, roles, door.on_behalf, None, details.method)
        if handler.stream_unary is not None:
            return handler._replace(stream_unary=door.unary(handler.stream_unary))
        return handler._replace(stream_stream=door.stream(handler.stream_stream))

    def refuse(self, reason: str) -> None:
        self._refused(reason)


class _Door:
    """One call's checks, made before its handler runs."""

    def __init__(
        self,
        boundary: Boundary,
        roles: frozenset[str] | None,
        on_behalf: str | None,
        decode: Callable[[bytes], Any] | None,
        method: str,
    ) -> None:
        self._boundary = boundary
        self._roles = roles
        self.on_behalf = on_behalf
        self._decode = decode
        self._method = method

    async def _enter(self, raw: Any, context: grpc.aio.ServicerContext) -> Any:
        _CALLER.set(await self._authenticate(context))
        try:
            return self._decoded(raw)
        except _Malformed as exc:
            await self._refuse(context, grpc.StatusCode.INVALID_ARGUMENT, "malformed", str(exc))

    def _decoded(self, raw: Any) -> Any:
        if self._decode is None:
            return raw
        try:
            return self._decode(raw)
        except (DecodeError, ValueError, TypeError, RecursionError):
            raise _Malformed(f"the request is not a valid {self._method} message") from None

    async def _authenticate(self, context: grpc.aio.ServicerContext) -> Principal:
        names = context.auth_context().get("x509_common_name") or []
        try:
            principal = Principal.parse(names[0].decode("utf-8", "replace")) if len(names) == 1 else None
        except CredentialError:
            principal = None
        if principal is None:
            await self._refuse(
                context,
                grpc.StatusCode.UNAUTHENTICATED,
                "unauthenticated",
                "the client certificate names no principal (role:name); ask for credentials with mca credentials",
            )
        if principal.role == "replica" and self.on_behalf is not None:
            try:  # a replica relays a client's call: the client is the caller
                principal = Principal.parse(self.on_behalf)
            except CredentialError:
                await self._refuse(
                    context, grpc.StatusCode.INVALID_ARGUMENT, "malformed", f"{ON_BEHALF_OF}: not a principal"
                )
        if self._roles is not None and principal.role not in self._roles:
            await self._refuse(
                context,
                grpc.StatusCode.PERMISSION_DENIED,
                "role",
                f"{principal} may not call {self._method} (it is for: {', '.join(sorted(self._roles))})",
            )
        return principal

    async def _refuse(
        self, context: grpc.aio.ServicerContext, code: grpc.StatusCode, reason: str, details: str
    ) -> NoReturn:
        self._boundary.refuse(reason)
        log.warning("refused %s from %s: %s", self._method, context.peer(), details)
        await context.abort(code, details)
        raise AssertionError("context.abort returned")

    def unary(self, inner: Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]) -> Any:
        async def handle(raw: Any, context: grpc.aio.ServicerContext) -> Any:
            request = await self._enter(raw, context)
            try:
                return await inner(request, context)
            except (grpc.aio.AbortError, asyncio.CancelledError):
                raise
            except Exception:
                await self._crash(context)

        return handle

    def stream(self, inner: Callable[[Any, grpc.aio.ServicerContext], AsyncIterator[Any]]) -> Any:
        async def handle(raw: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            request = await self._enter(raw, context)
            try:
                async for item in inner(request, context):
                    yield item
            except (grpc.aio.AbortError, asyncio.CancelledError):
                raise
            except Exception:
                await self._crash(context)

        return handle

    def bidi(self, inner: Callable[[AsyncIterator[Any], grpc.aio.ServicerContext], AsyncIterator[Any]]) -> Any:
        """A stream both ways: the caller is checked once, when it opens the stream; each message
        is decoded here, and a corrupt one ends the stream with ``INVALID_ARGUMENT`` (the handler
        may read in a task of its own: the refusal reaches the client through its replies)."""

        async def handle(raw_requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
            _CALLER.set(await self._authenticate(context))

            async def requests() -> AsyncIterator[Any]:
                async for raw in raw_requests:
                    yield self._decoded(raw)

            try:
                async for item in inner(requests(), context):
                    yield item
            except _Malformed as exc:
                await self._refuse(context, grpc.StatusCode.INVALID_ARGUMENT, "malformed", str(exc))
            except (grpc.aio.AbortError, asyncio.CancelledError):
                raise
            except Exception:
                await self._crash(context)

        return handle

    async def _crash(self, context: grpc.aio.ServicerContext) -> None:
        principal = _CALLER.get(None)
        log.exception("%s failed for %s (%s)", self._method, principal, context.peer())
        self._boundary.refuse("internal")
        await context.abort(grpc.StatusCode.INTERNAL, f"{self._method} failed inside the server (logged); retry later")


class _Malformed(Exception):
    """A request that does not decode; its message says which method's message it is not."""
