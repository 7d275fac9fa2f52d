"""The small keep-alive HTTP/1.1 upstream that bench_window.py and bench_team.py put behind the
local server's upstream engine: it reads each request (head, then the body its
content-length announces), asks the benchmark for the answer, and writes it.

Example::

    async def answer(head: bytes, body: bytes) -> bytes:
        return completion("m")

    server = await asyncio.start_server(lambda r, w: serve_connection(r, w, answer), ...)
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import orjson


def completion(model: str) -> bytes:
    """A minimal chat.completion body answering "ok"."""
    return orjson.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                     "message": {"role": "assistant", "content": "ok"}}],
        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
    })


async def serve_connection(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    answer: Callable[[bytes, bytes], Awaitable[bytes]],
) -> None:
    """Answer the requests of one connection until the client closes it."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = await reader.readexactly(length) if length else b""
            data = await answer(head, body)
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                         b"content-length: %d\r\n\r\n%s" % (len(data), data))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()
