#!/usr/bin/python3
"""mailsink: the lab's SMTP server that accepts every message and keeps it as a file.

  mailsink.py --listen 127.0.0.1 --port 25 --dir /var/lib/mailsink [--max-bytes 10485760]

Each message becomes one file in --dir, named by its arrival time so that names sort in arrival
order (20261205T171500.123456Z-<pid>-<n>.eml), written whole or not at all (temporary file,
then rename), mode 0640. A file holds the message exactly as received (RFC 5322, CRLF line
ends), after two lines with the envelope:

  X-Mailsink-From: <envelope sender, or <> for a bounce>
  X-Mailsink-To: <envelope recipients, comma-separated>

A message over --max-bytes is refused (552) and nothing is stored. One log line per message on
stderr (journald keeps it). SIGTERM or SIGINT stops the server cleanly.
Needs Debian's python3-aiosmtpd.
"""

from __future__ import annotations

import argparse
import asyncio
import email.parser
import email.policy
import itertools
import logging
import os
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, AnyStr

# aiosmtpd ships py.typed, but Debian's python3-aiosmtpd and older releases may not: a missing
# marker must not fail the lint.
from aiosmtpd.smtp import SMTP, Envelope, Session  # type: ignore[import-untyped,unused-ignore]

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
FILE_MODE = 0o640
log = logging.getLogger("mailsink")


# --- The stored file ----------------------------------------------------------------------------


def file_name(moment: float, pid: int, number: int) -> str:
    """A name that sorts by arrival: UTC time to the microsecond, then this process and its count
    (zero-padded, so two messages of the same microsecond still sort)."""
    seconds = int(moment)
    micros = round((moment - seconds) * 1_000_000)
    if micros == 1_000_000:
        seconds, micros = seconds + 1, 0
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(seconds))
    return f"{stamp}.{micros:06d}Z-{pid}-{number:06d}.eml"


def stored_bytes(mail_from: str, rcpt_tos: list[str], content: bytes) -> bytes:
    """The message as received, after the envelope headers."""
    envelope = f"X-Mailsink-From: {mail_from or '<>'}\r\nX-Mailsink-To: {', '.join(rcpt_tos)}\r\n"
    return envelope.encode("utf-8") + content


def subject_of(content: bytes) -> str:
    """The decoded Subject header, "" when there is none or it cannot be read."""
    try:
        headers = email.parser.BytesHeaderParser(policy=email.policy.default).parsebytes(content)
        return str(headers.get("Subject", ""))
    except Exception:  # a malformed header must not lose the message, only its log line's subject
        return ""


def write_atomically(directory: Path, name: str, data: bytes) -> Path:
    """Write data to directory/name whole or not at all: a temporary file (a dot name, which no
    reader of *.eml sees) in the same directory, synced, then renamed."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), FILE_MODE)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        path = directory / name
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# --- The SMTP side ------------------------------------------------------------------------------


class Sink:
    """aiosmtpd's handler: every message is stored."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.count = itertools.count(1)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        mail_from = envelope.mail_from or ""
        rcpt_tos = list(envelope.rcpt_tos)
        content = envelope.original_content or b""
        name = file_name(time.time(), os.getpid(), next(self.count))
        try:
            write_atomically(self.directory, name, stored_bytes(mail_from, rcpt_tos, content))
        except OSError as exc:
            log.error(
                "cannot store the message from %s to %s in %s: %s",
                mail_from or "<>",
                ", ".join(rcpt_tos),
                self.directory,
                exc,
            )
            return "451 4.3.0 Cannot store the message, try again later"
        log.info(
            "stored from=%s to=%s subject=%r file=%s",
            mail_from or "<>",
            ",".join(rcpt_tos),
            subject_of(content),
            name,
        )
        return "250 OK"


class LoggingSMTP(SMTP):  # type: ignore[misc,unused-ignore]  # untyped without aiosmtpd's marker
    """aiosmtpd's server, which logs the messages it refuses as too big (aiosmtpd refuses them
    itself, before any handler hook runs) and keeps its open connections in `connections`, so
    that a stop can close them."""

    def __init__(self, handler: Sink, connections: set[LoggingSMTP], **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.connections = connections

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.connections.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        self.connections.discard(self)
        super().connection_lost(error)

    async def push(self, status: AnyStr) -> None:
        text = status.decode("utf-8", "replace") if isinstance(status, bytes) else status
        if text.startswith("552"):
            envelope = self.envelope
            log.warning(
                "refused from=%s to=%s peer=%s: %s (the limit is %d bytes, --max-bytes)",
                (envelope.mail_from if envelope else None) or "?",
                ",".join(envelope.rcpt_tos) if envelope else "",
                self.session.peer[0] if self.session and self.session.peer else "?",
                text,
                self.data_size_limit,
            )
        await super().push(status)


async def serve(listen: str, port: int, directory: Path, max_bytes: int) -> None:
    """Serve until SIGTERM or SIGINT."""
    loop = asyncio.get_running_loop()
    handler = Sink(directory)
    hostname = socket.gethostname()  # not getfqdn(): no DNS lookup at start
    connections: set[LoggingSMTP] = set()

    def factory() -> LoggingSMTP:
        return LoggingSMTP(
            handler,
            connections,
            data_size_limit=max_bytes,
            enable_SMTPUTF8=True,
            hostname=hostname,
            ident="mailsink",
        )

    server = await loop.create_server(factory, host=listen, port=port)
    bound = server.sockets[0].getsockname()
    log.info("listening on %s:%d, storing into %s", bound[0], bound[1], directory)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    server.close()
    for connection in list(connections):
        if connection.transport is not None:
            connection.transport.close()
    try:
        await asyncio.wait_for(server.wait_closed(), timeout=5)
    except TimeoutError:
        log.warning("stopped with connections still open")
    log.info("stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mailsink", description=__doc__.split("\n")[0])
    parser.add_argument("--listen", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=25, help="SMTP port (0: any free port)")
    parser.add_argument("--dir", type=Path, default=Path("/var/lib/mailsink"))
    parser.add_argument(
        "--max-bytes", type=int, default=DEFAULT_MAX_BYTES, help="refuse bigger messages (552)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    # aiosmtpd logs every command at INFO: our one line per message is enough.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    if not args.dir.is_dir() or not os.access(args.dir, os.W_OK | os.X_OK):
        print(
            f"mailsink: {args.dir} is not a directory this user ({os.geteuid()}) can write; "
            "create it for the service's user or pass another --dir",
            file=sys.stderr,
        )
        return 2
    try:
        asyncio.run(serve(args.listen, args.port, args.dir, args.max_bytes))
    except OSError as exc:
        print(f"mailsink: cannot listen on {args.listen}:{args.port}: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
