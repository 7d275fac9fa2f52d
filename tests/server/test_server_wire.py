"""The upstream engine's HTTP client (``server/_wire.py``) against raw HTTP servers that
answer the ways real ones do: Content-Length, chunked, until close, keep-alive connections
the server drops between calls, oversized answers, no server at all, TLS refused."""

from __future__ import annotations

import asyncio

import pytest

from zgpu_pandas.server._wire import TlsError, TooLarge, Unreachable, WirePool


async def _serve(answers, *, close_after_each=False):
    """A server answering each request with the next raw answer; counts connections."""
    seen = {"connections": 0, "requests": []}

    async def client(reader, writer):
        seen["connections"] += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length"))
                seen["requests"].append((head, await reader.readexactly(length)))
                answer = answers[min(len(seen["requests"]), len(answers)) - 1]
                writer.write(answer)
                await writer.drain()
                if close_after_each or b"connection: close" in answer:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        writer.close()

    server = await asyncio.start_server(client, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1/chat", seen


def _run(coro):
    return asyncio.run(coro)


def test_content_length_chunked_and_until_close_answers():
    async def main():
        answers = [
            b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nx-request-id: r1\r\n\r\nhello",
            b"HTTP/1.1 429 Too Many\r\nTransfer-Encoding: chunked\r\nretry-after: 2\r\n\r\n"
            b"3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nx-trailer: t\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end",
        ]
        server, url, seen = await _serve(answers, close_after_each=False)
        pool = WirePool(url, limit=2, timeout=10)
        try:
            a = await pool.post(b'{"x": 1}', {"authorization": "Bearer k"})
            b = await pool.post(b"{}", {})
            c = await pool.post(b"{}", {})
        finally:
            await pool.aclose()
            server.close()
        return a, b, c, seen

    a, b, c, seen = _run(main())
    assert (a.status, a.body, a.headers["x-request-id"]) == (200, b"hello", "r1")
    assert (b.status, b.body, b.headers["retry-after"]) == (429, b"abcde", "2")
    assert (c.status, c.body) == (200, b"until the end")
    head, body = seen["requests"][0]
    assert head.startswith(b"POST /v1/chat HTTP/1.1\r\n") and b"authorization: Bearer k" in head
    assert body == b'{"x": 1}'
    assert seen["connections"] == 1  # kept alive across the three calls


def test_a_kept_connection_the_server_closed_is_replaced_once():
    async def main():
        ok = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
        server, url, seen = await _serve([ok], close_after_each=True)
        pool = WirePool(url, limit=1)
        try:
            first = await pool.post(b"{}", {})
            await asyncio.sleep(0.05)  # the server has closed the kept connection by now
            second = await pool.post(b"{}", {})
        finally:
            await pool.aclose()
            server.close()
        return first, second, seen

    first, second, seen = _run(main())
    assert first.body == second.body == b"ok"
    assert len(seen["requests"]) == 2 and seen["connections"] == 2  # nothing sent twice


def test_an_answer_over_the_cap_is_not_read():
    async def main():
        big = b"HTTP/1.1 200 OK\r\ncontent-length: 5000\r\n\r\n" + b"x" * 5000
        chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n" + b"1000\r\n" + b"x" * 4096 + b"\r\n0\r\n\r\n"
        results = []
        for answer in (big, chunked):
            server, url, _ = await _serve([answer])
            pool = WirePool(url, limit=1, max_body=1000)
            try:
                await pool.post(b"{}", {})
            except TooLarge as exc:
                results.append(str(exc))
            finally:
                await pool.aclose()
                server.close()
        return results

    results = _run(main())
    assert len(results) == 2 and all("1000 bytes" in r for r in results)


def test_no_server_is_unreachable_and_tls_to_a_plain_server_is_a_tls_error():
    async def plain(reader, writer):  # answers plain HTTP to whatever comes, TLS included
        writer.write(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    async def main():
        server = await asyncio.start_server(plain, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        out = []
        for target, exc_type in ((f"https://127.0.0.1:{port}/v1", TlsError),
                                 ("http://127.0.0.1:9/v1", Unreachable)):
            pool = WirePool(target, limit=1, connect_timeout=5)
            with pytest.raises(exc_type) as info:
                await pool.post(b"{}", {})
            out.append(str(info.value))
        server.close()
        return out

    tls, unreachable = _run(main())
    assert "TLS handshake" in tls
    assert "ConnectError" in unreachable


def test_a_header_with_a_line_break_is_refused():
    async def main():
        pool = WirePool("http://127.0.0.1:9/v1", limit=1)
        with pytest.raises(ValueError, match="line break"):
            await pool.post(b"{}", {"x-evil": "a\r\nx-injected: 1"})

    _run(main())
