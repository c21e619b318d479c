"""The lab's mail sink (roles/monitoring/files/mailsink.py), run as the service runs it: a process
on a free port of 127.0.0.1, fed by smtplib, stopped by SIGTERM."""

from __future__ import annotations

import email
import email.policy
import signal
import smtplib
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

import pytest
from repo_module import REPO, load

SCRIPT = REPO / "roles/monitoring/files/mailsink.py"
MAX_BYTES = 64 * 1024
DEADLINE = 10.0

mailsink = load("roles/monitoring/files/mailsink.py")


@dataclass
class Sink:
    process: subprocess.Popen[str]
    port: int
    directory: Path
    log: list[str] = field(default_factory=list)

    def logged(self, text: str) -> str:
        """The first log line containing text, waiting for it up to the deadline."""
        end = time.monotonic() + DEADLINE
        while time.monotonic() < end:
            found = [line for line in self.log if text in line]
            if found:
                return found[0]
            time.sleep(0.02)
        raise AssertionError(f"no log line with {text!r} in {self.log}")

    def stored(self) -> list[Path]:
        return sorted(self.directory.glob("*.eml"))


def start(directory: Path) -> Sink:
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--listen", "127.0.0.1", "--port", "0"]
        + ["--dir", str(directory), "--max-bytes", str(MAX_BYTES)],
        stderr=subprocess.PIPE,
        text=True,
    )
    sink = Sink(process, 0, directory)

    def read() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            sink.log.append(line.rstrip("\n"))

    threading.Thread(target=read, daemon=True).start()
    listening = sink.logged("listening on 127.0.0.1:")
    sink.port = int(listening.split("127.0.0.1:")[1].split(",")[0])
    return sink


@pytest.fixture
def sink(tmp_path: Path) -> Iterator[Sink]:
    running = start(tmp_path)
    yield running
    if running.process.poll() is None:
        running.process.terminate()
        running.process.wait(DEADLINE)


def message(subject: str, body: str, sender: str = "app@lab.test") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "ops@lab.test"
    msg["Subject"] = subject
    msg.set_content(body)
    return msg


def parsed(path: Path) -> EmailMessage:
    parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_every_message_is_stored_with_its_envelope(sink: Sink) -> None:
    with smtplib.SMTP("127.0.0.1", sink.port, timeout=DEADLINE) as client:
        client.send_message(
            message("Alert: HostCpuHigh", "was1 is busy\n"),
            from_addr="alertmanager@mon1.lab.test",
            to_addrs=["ops@lab.test", "dev@lab.test"],
        )
        client.send_message(message("Password reset", "Your link\n"), to_addrs=["a@lab.test"])

    first_line = sink.logged("subject='Alert: HostCpuHigh'")
    sink.logged("subject='Password reset'")
    first, second = sink.stored()
    assert first.name in first_line
    assert "from=alertmanager@mon1.lab.test to=ops@lab.test,dev@lab.test" in first_line

    alert = parsed(first)
    assert alert["X-Mailsink-From"] == "alertmanager@mon1.lab.test"
    assert alert["X-Mailsink-To"] == "ops@lab.test, dev@lab.test"
    assert alert["From"] == "app@lab.test"  # the header, as sent; the envelope may differ
    assert alert["Subject"] == "Alert: HostCpuHigh"
    assert alert.get_content().splitlines() == ["was1 is busy"]  # CRLF, as SMTP carries it
    reset = parsed(second)
    assert (reset["X-Mailsink-From"], reset["X-Mailsink-To"]) == ("app@lab.test", "a@lab.test")
    assert (reset["Subject"], reset.get_content().strip()) == ("Password reset", "Your link")
    assert stat.S_IMODE(first.stat().st_mode) == 0o640
    assert [p.name for p in sink.directory.iterdir()] and not list(sink.directory.glob(".*"))


def test_the_file_is_the_message_as_received_after_the_envelope(sink: Sink) -> None:
    raw = b"Subject: raw\r\nX-Odd:  spaces kept\r\n\r\n.leading dot\r\nend\r\n"
    with smtplib.SMTP("127.0.0.1", sink.port, timeout=DEADLINE) as client:
        client.sendmail("", ["ops@lab.test"], raw)  # a bounce: the null sender
    sink.logged("subject='raw'")
    (stored,) = sink.stored()
    assert stored.read_bytes() == b"X-Mailsink-From: <>\r\nX-Mailsink-To: ops@lab.test\r\n" + raw


def test_a_message_over_the_limit_is_refused_and_not_stored(sink: Sink) -> None:
    big = message("Too big", "x\n" * MAX_BYTES)
    with smtplib.SMTP("127.0.0.1", sink.port, timeout=DEADLINE) as client:
        # smtplib declares the size (MAIL FROM ... SIZE=n): refused before the data is sent.
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            client.send_message(big)
        assert refused.value.smtp_code == 552
        client.rset()
        # A client that declares no size is refused after the data.
        assert client.mail("app@lab.test")[0] == 250
        assert client.rcpt("ops@lab.test")[0] == 250
        assert client.data(big.as_string())[0] == 552  # smtplib sends a str with CRLF ends
        # The connection is still good for a message within the limit.
        client.send_message(message("Small", "fits\n"))
    sink.logged("subject='Small'")
    assert "552" in sink.logged("refused from=app@lab.test to=ops@lab.test")
    assert f"the limit is {MAX_BYTES} bytes" in sink.logged("refused from=?")
    assert [parsed(p)["Subject"] for p in sink.stored()] == ["Small"]


def test_sigterm_stops_it_cleanly_even_with_a_client_connected(sink: Sink) -> None:
    with smtplib.SMTP("127.0.0.1", sink.port, timeout=DEADLINE) as client:
        client.noop()
        sink.process.send_signal(signal.SIGTERM)
        assert sink.process.wait(DEADLINE) == 0
    sink.logged("stopped")


def test_a_directory_it_cannot_write_is_refused_at_start(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--port", "0", "--dir", str(missing)],
        capture_output=True,
        text=True,
        timeout=DEADLINE,
    )
    assert done.returncode == 2
    assert f"{missing} is not a directory" in done.stderr


def test_names_sort_by_arrival() -> None:
    moments = [1796490900.0, 1796490900.000001, 1796490900.5, 1796490901.999_999_9]
    names = [mailsink.file_name(m, 4321, n) for n, m in enumerate(moments, 1)]
    assert names[0] == "20261205T171500.000000Z-4321-000001.eml"
    assert names[3] == "20261205T171502.000000Z-4321-000004.eml"  # rounding carries the second
    assert names == sorted(names)
    # The same microsecond: the count orders them, past 9 too.
    assert mailsink.file_name(0.0, 1, 9) < mailsink.file_name(0.0, 1, 10)


def test_an_atomic_write_that_fails_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(TypeError):
        mailsink.write_atomically(tmp_path, "a.eml", "not bytes")
    assert list(tmp_path.iterdir()) == []
    written = mailsink.write_atomically(tmp_path, "b.eml", b"x")
    assert (written.read_bytes(), [p.name for p in tmp_path.iterdir()]) == (b"x", ["b.eml"])
