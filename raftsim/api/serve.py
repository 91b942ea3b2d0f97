"""Serving an application on a real TCP port (the live world: one port per server)."""

from __future__ import annotations

from aiohttp import web


async def serve_http(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Listen on ``host:port`` (port 0: any free port; read it from
    ``runner.addresses``). Stop with ``await runner.cleanup()``. No access log: the
    application's requests carry ACL tokens, and nothing of a request is logged."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
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
