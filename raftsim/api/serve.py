"""Serving an application on a real TCP port (the live world: one port per server)."""

from __future__ import annotations

import ssl

from aiohttp import web


async def serve_http(app: web.Application, host: str, port: int, *,
                     ssl_context: ssl.SSLContext | None = None) -> web.AppRunner:
    """Listen on ``host:port`` (port 0: any free port; read it from
    ``runner.addresses``), HTTPS with ``ssl_context``. Stop with ``await
    runner.cleanup()``. No access log: the application's requests carry ACL tokens, and
    nothing of a request is logged."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, ssl_context=ssl_context)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


def bound_port(runner: web.AppRunner) -> int:
    """The TCP port the first site of ``runner`` listens on."""
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    raise RuntimeError("the runner listens on no TCP port")
