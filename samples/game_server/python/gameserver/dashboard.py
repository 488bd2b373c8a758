"""HTTP on the game's own port: ``/stats.json`` and ``/`` (the live dashboard).

A connection whose first bytes are ``GET `` or ``HEAD`` is served one HTTP/1.0
response and closed; everything else is the game protocol. The page
(dashboard.html) polls /stats.json twice a second and draws its charts on
canvases with plain JavaScript.
"""
import json
import os

_PAGE = None
MAX_HEAD = 8192


def _page():
    global _PAGE
    if _PAGE is None:
        with open(os.path.join(os.path.dirname(__file__), "dashboard.html"), "rb") as f:
            _PAGE = f.read()
    return _PAGE


def serve_http(stream, buf):
    """Reads the request head (already started in `buf`) and answers it."""
    from . import snapshot_stats
    while b"\r\n\r\n" not in buf and b"\n\n" not in buf:
        if len(buf) > MAX_HEAD:
            return _reply(stream, 431, "text/plain", b"request header too large\n")
        data = stream.read(65536)
        if not data:
            return None
        buf += data
    line = bytes(buf.split(b"\n", 1)[0]).decode("latin-1").strip()
    parts = line.split()
    if len(parts) < 2:
        return _reply(stream, 400, "text/plain", b"bad request\n")
    method, path = parts[0], parts[1].split("?", 1)[0]
    if path == "/":
        status, ctype, body = 200, "text/html; charset=utf-8", _page()
    elif path == "/stats.json":
        status, ctype = 200, "application/json"
        body = json.dumps(snapshot_stats(), separators=(",", ":")).encode()
    else:
        status, ctype, body = 404, "text/plain", b"not found\n"
    return _reply(stream, status, ctype, b"" if method == "HEAD" else body, len(body))


def _reply(stream, status, ctype, body, length=None):
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found",
              431: "Request Header Fields Too Large"}[status]
    head = ("HTTP/1.0 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n"
            "Cache-Control: no-store\r\nConnection: close\r\n\r\n"
            % (status, reason, ctype, len(body) if length is None else length)).encode()
    stream.write(head + body)
    try:
        stream.drain()
    except (OSError, AttributeError):
        pass
