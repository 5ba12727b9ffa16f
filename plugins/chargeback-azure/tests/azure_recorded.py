"""Recorded Azure responses served through a real azure-core transport, and a fake credential.

The SDK pipelines run unchanged (auth policy, logging policy, response handling); only
the network is replaced by :class:`RecordedTransport`, which answers each request from a
queue of responses recorded in the documented shapes.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import Any, Self
from urllib.parse import parse_qs, urlparse

import requests
import urllib3
from azure.core.credentials import AccessToken
from azure.core.pipeline.transport import HttpTransport
from azure.core.rest._requests_basic import RestRequestsTransportResponse

Handler = Callable[[Any], tuple[int, dict[str, str], bytes]]


class FakeCredential:
    """A TokenCredential that hands out a fixed token (the canary, in the secrets test)."""

    def __init__(self, token: str = "fake-token"):
        self.token = token
        self.scopes: list[str] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.extend(scopes)
        return AccessToken(self.token, int(time.time()) + 3600)


class RecordedTransport(HttpTransport):
    """Answers requests from handlers matched by method and URL path; records every request."""

    def __init__(self) -> None:
        self.routes: list[tuple[str, str, Handler]] = []
        self.requests: list[Any] = []

    def route(self, method: str, path: str, handler: Handler) -> None:
        self.routes.append((method, path, handler))

    def send(self, request: Any, **kwargs: Any) -> Any:
        self.requests.append(request)
        self.last_kwargs = kwargs
        path = urlparse(request.url).path
        for method, route_path, handler in self.routes:
            if method == request.method and path == route_path:
                status, headers, body = handler(request)
                break
        else:
            status, headers, body = 404, {}, b'{"error": {"code": "NotFound", "message": "no recording"}}'
        response = requests.Response()
        response.status_code = status
        response.headers.update(headers)
        response.raw = urllib3.HTTPResponse(
            body=io.BytesIO(body), headers=headers, status=status, preload_content=False, decode_content=False
        )
        response.url = request.url
        response.request = requests.Request(request.method, request.url).prepare()
        return RestRequestsTransportResponse(request=request, internal_response=response)

    def open(self) -> None:
        pass

    def close(self) -> None:
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *args: object) -> None:
        pass


def json_response(
    document: Any, status: int = 200, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    return (
        status,
        {"Content-Type": "application/json; charset=utf-8", **(headers or {})},
        document.encode() if isinstance(document, str) else json.dumps(document).encode(),
    )


def sequence(*responses: tuple[int, dict[str, str], bytes]) -> Handler:
    """A handler that answers with each response in turn (then repeats the last)."""
    queue = list(responses)

    def handler(request: Any) -> tuple[int, dict[str, str], bytes]:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return handler


class BlobContainer:
    """Blob storage for one container: list (XML) and ranged download, as the REST API answers."""

    def __init__(self, transport: RecordedTransport, account: str, container: str):
        self.blobs: dict[str, bytes] = {}
        self.container = container
        transport.route("GET", f"/{container}", self._list)
        self._transport = transport

    def put(self, name: str, body: bytes) -> None:
        self.blobs[name] = body
        self._transport.route("GET", f"/{self.container}/{name}", self._download(name))

    def _list(self, request: Any) -> tuple[int, dict[str, str], bytes]:
        prefix = parse_qs(urlparse(request.url).query).get("prefix", [""])[0]
        items = "".join(
            f"<Blob><Name>{name}</Name><Properties><Last-Modified>{formatdate(usegmt=True)}</Last-Modified>"
            f"<Content-Length>{len(body)}</Content-Length><BlobType>BlockBlob</BlobType></Properties></Blob>"
            for name, body in sorted(self.blobs.items())
            if name.startswith(prefix)
        )
        xml = (
            f'<?xml version="1.0" encoding="utf-8"?><EnumerationResults ServiceEndpoint="https://x/" '
            f'ContainerName="{self.container}"><Prefix>{prefix}</Prefix><Blobs>{items}</Blobs><NextMarker />'
            f"</EnumerationResults>"
        )
        return 200, {"Content-Type": "application/xml", "x-ms-version": "2021-08-06"}, xml.encode()

    def _download(self, name: str) -> Handler:
        def handler(request: Any) -> tuple[int, dict[str, str], bytes]:
            body = self.blobs[name]
            headers = {
                "Content-Type": "application/octet-stream",
                "ETag": '"0x8DC"',
                "x-ms-blob-type": "BlockBlob",
                "Last-Modified": formatdate(usegmt=True),
                "x-ms-version": "2021-08-06",
            }
            ranged = request.headers.get("x-ms-range") or request.headers.get("Range")
            if ranged:
                start, end = (int(x) for x in ranged.split("=")[1].split("-"))
                chunk = body[start : end + 1]
                headers.update(
                    {
                        "Content-Range": f"bytes {start}-{start + len(chunk) - 1}/{len(body)}",
                        "Content-Length": str(len(chunk)),
                    }
                )
                return 206, headers, chunk
            headers["Content-Length"] = str(len(body))
            return 200, headers, body

        return handler
