#!/usr/bin/python3
"""autoscaler: the webhook on the monitoring host that grows and shrinks the WAS tier.

  autoscaler.py --config /etc/autoscaler/config.json

Alertmanager posts its alerts (webhook format, version 4) to POST /alerts. A firing alert whose
label `action` is `scale_out` or `scale_in` asks for one step; every other alert is ignored. A step
moves one host of the standby pool into the WAS tier (scale-out) or back (scale-in), by running the
configured command (the installer's scale playbook, through ansible-runner) with the new list of
pool hosts that serve. Only when that command succeeds is the list written to the state file,
which the next site.yml reads: the inventory stays the truth.

What keeps a storm of alerts to one step:
  - a lock: one step at a time; an alert that arrives during a step is logged and dropped;
  - a cool-down: after a step, none for `cooldown_seconds`;
  - the bounds: the WAS count stays within [min_was, max_was] and the pool's size.
A malformed or unknown call changes nothing: it gets a 4xx answer and a log line.
Each step, done or failed, is logged and mailed. GET /state answers the state as JSON.

The config file (JSON, written by the role):
  {"listen": "10.77.0.51", "port": 9095, "state_file": "/var/lib/autoscaler/state.json",
   "lock_file": "/run/autoscaler/lock", "pool": ["was3", "was4"], "fixed_was": 2,
   "min_was": 2, "max_was": 4, "cooldown_seconds": 300, "command": ["/opt/.../scale", "--serve"],
   "command_timeout": 1800, "mail": {"host": "127.0.0.1", "port": 25, "from": "...", "to": ["..."]}}
The command gets the pool hosts that are to serve, comma-separated, as its last argument.
"""

from __future__ import annotations

import argparse
import fcntl
import functools
import json
import logging
import os
import signal
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ACTIONS = ("scale_out", "scale_in")
MAX_BODY_BYTES = 1024 * 1024
log = logging.getLogger("autoscaler")


class BadCall(ValueError):
    """A webhook call this service does not understand: answered 400, nothing changes."""


# --- Configuration and state ----------------------------------------------------------------------


@dataclass(frozen=True)
class Config:
    state_file: Path
    lock_file: Path
    pool: tuple[str, ...]  # standby hosts, in the order they join
    fixed_was: int  # WAS hosts of the inventory's `was` group that are not from the pool
    min_was: int
    max_was: int
    cooldown_seconds: float
    command: tuple[str, ...]
    command_timeout: float = 1800
    listen: str = "127.0.0.1"
    port: int = 9095
    mail: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Config:
        """The configuration, or ValueError naming the first wrong key (checked at start)."""
        try:
            config = cls(
                state_file=Path(data["state_file"]),
                lock_file=Path(data["lock_file"]),
                pool=tuple(str(host) for host in data["pool"]),
                fixed_was=int(data["fixed_was"]),
                min_was=int(data["min_was"]),
                max_was=int(data["max_was"]),
                cooldown_seconds=float(data["cooldown_seconds"]),
                command=tuple(str(arg) for arg in data["command"]),
                command_timeout=float(data.get("command_timeout", 1800)),
                listen=str(data.get("listen", "127.0.0.1")),
                port=int(data.get("port", 9095)),
                mail=dict(data.get("mail", {})),
            )
        except KeyError as exc:
            raise ValueError(f"the configuration has no {exc.args[0]!r}") from exc
        except (TypeError, ValueError) as exc:
            raise ValueError(f"the configuration has a value of the wrong type: {exc}") from exc
        if not 1 <= config.min_was <= config.max_was:
            raise ValueError(
                f"need 1 <= min_was <= max_was, got {config.min_was}, {config.max_was}"
            )
        if config.fixed_was > config.max_was:
            raise ValueError(f"fixed_was {config.fixed_was} is over max_was {config.max_was}")
        if not config.command:
            raise ValueError("the configuration's command is empty")
        if len(set(config.pool)) != len(config.pool):
            raise ValueError(f"the pool names a host twice: {list(config.pool)}")
        return config


@dataclass
class State:
    serving: list[str]  # pool hosts in the WAS tier now, in the order they joined
    last_step_at: float = 0.0  # when the last step ended (time.time()), 0 if never

    @classmethod
    def read(cls, path: Path, pool: tuple[str, ...]) -> State:
        """The saved state; none yet means no pool host serves. Hosts no longer in the pool are
        dropped (the operator took them out of the inventory)."""
        if not path.exists():
            return cls(serving=[])
        data = json.loads(path.read_text())
        return cls(
            serving=[host for host in data.get("serving", []) if host in pool],
            last_step_at=float(data.get("last_step_at", 0.0)),
        )

    def write(self, path: Path) -> None:
        """Whole or not at all: a temporary file in the same directory, then a rename."""
        data = json.dumps({"serving": self.serving, "last_step_at": self.last_step_at}, indent=2)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as out:
                out.write(data + "\n")
                out.flush()
                os.fsync(out.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


# --- What a call asks, and what is done ---------------------------------------------------------


def requested_actions(body: bytes) -> list[str]:
    """The scaling steps an Alertmanager webhook call asks for: one per firing alert with an
    `action` label, in order. Raises BadCall when the body is not such a call."""
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSON, UTF-8, number size, nesting depth
        raise BadCall(f"the body is not JSON that can be read ({exc})") from exc
    if not isinstance(payload, dict) or payload.get("version") != "4":
        raise BadCall("not an Alertmanager webhook call (version 4 expected)")
    alerts = payload.get("alerts")
    if not isinstance(alerts, list):
        raise BadCall("the call has no list of alerts")
    actions = []
    for alert in alerts:
        labels = alert.get("labels") if isinstance(alert, dict) else None
        if not isinstance(labels, dict) or alert.get("status") not in ("firing", "resolved"):
            raise BadCall("an alert without labels or status")
        action = labels.get("action")
        if action is None or alert["status"] != "firing":
            continue
        if action not in ACTIONS:
            # Skipped, not refused: Alertmanager does not resend a refused call, and the same call
            # may carry a step this service does know.
            log.warning("ignored an alert with an unknown action %r (known: %s)", action, ACTIONS)
            continue
        actions.append(action)
    return actions


@dataclass(frozen=True)
class Step:
    action: str
    host: str  # the pool host that joins or leaves
    serving: list[str]  # the pool hosts that serve after the step


def plan(config: Config, state: State, action: str, now: float) -> Step | str:
    """The step to take, or why none: the cool-down, the bounds, an empty or unused pool."""
    waiting = state.last_step_at + config.cooldown_seconds - now
    if waiting > 0:
        return f"cooling down for {waiting:.0f} s more"
    count = config.fixed_was + len(state.serving)
    if action == "scale_out":
        idle = [host for host in config.pool if host not in state.serving]
        if count >= config.max_was:
            return f"at the maximum of {config.max_was} WAS"
        if not idle:
            return "no standby host left in the pool"
        return Step(action, idle[0], [*state.serving, idle[0]])
    if count <= config.min_was:
        return f"at the minimum of {config.min_was} WAS"
    if not state.serving:
        return "no pool host serves (the inventory's own WAS are never taken out)"
    return Step(action, state.serving[-1], state.serving[:-1])


@contextmanager
def held(lock_file: Path) -> Iterator[bool]:
    """True while this process holds the lock, False at once if another step holds it."""
    with open(lock_file, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


Runner = Callable[[Step], tuple[bool, str]]
Mailer = Callable[[str, str], None]


def run_command(config: Config) -> Runner:
    """The real step: the configured command with the serving pool hosts as its last argument."""

    def run(step: Step) -> tuple[bool, str]:
        argv = [*config.command, ",".join(step.serving)]
        try:
            # Its own session: on a timeout the whole process group goes, playbook included.
            process = subprocess.Popen(
                argv,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                errors="replace",
                start_new_session=True,
            )
        except OSError as exc:
            return False, f"could not start {argv[0]}: {exc}"
        try:
            output, _ = process.communicate(timeout=config.command_timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
            return False, f"timed out after {config.command_timeout:.0f} s\n{output[-4000:]}"
        return process.returncode == 0, output[-4000:]

    return run


def send_mail(config: Config) -> Mailer:
    """Mail through the configured relay (the lab's mail sink); a relay that fails is logged."""

    def mail(subject: str, body: str) -> None:
        settings = config.mail
        if not settings.get("to"):
            return
        message = EmailMessage()
        message["From"] = settings.get("from", "autoscaler@localhost")
        message["To"] = ", ".join(settings["to"])
        message["Subject"] = subject
        message.set_content(body)
        try:
            with smtplib.SMTP(
                settings.get("host", "127.0.0.1"), int(settings.get("port", 25)), timeout=30
            ) as smtp:
                smtp.send_message(message)
        except (OSError, ValueError, smtplib.SMTPException) as exc:
            log.error("could not mail %r: %s", subject, exc)

    return mail


class Scaler:
    """One step at a time, within the bounds, after the cool-down; each step logged and mailed."""

    def __init__(
        self, config: Config, runner: Runner, mailer: Mailer, clock: Callable[[], float] = time.time
    ) -> None:
        self.config, self.runner, self.mailer, self.clock = config, runner, mailer, clock

    def state(self) -> State:
        return State.read(self.config.state_file, self.config.pool)

    def handle(self, action: str) -> str:
        """Take the step `action` asks for if it may be taken now; what happened, in words."""
        with held(self.config.lock_file) as mine:
            if not mine:
                return self._skip(action, "another step is under way")
            state = self.state()
            step = plan(self.config, state, action, self.clock())
            if isinstance(step, str):
                return self._skip(action, step)
            log.info("%s: %s starts (serving after: %s)", action, step.host, step.serving)
            try:
                ok, output = self.runner(step)
            except Exception:  # a step that breaks is a failed step: mailed, and cooled down
                ok, output = False, traceback.format_exc()
            if ok:
                state.serving = step.serving
            state.last_step_at = self.clock()
            verb = {"scale_out": "joined", "scale_in": "left"}[action]
            outcome = (
                f"{step.host} {verb} the WAS tier" if ok else f"{action} of {step.host} FAILED"
            )
            try:
                state.write(self.config.state_file)
            except OSError as exc:
                outcome += f", and the state was NOT saved ({exc}): fix it before the next step"
            log.info("%s: %s", action, outcome)
            total = self.config.fixed_was + len(state.serving)
            self.mailer(
                f"[autoscaler] {outcome}",
                f"{outcome}.\nWAS now: {total} (bounds {self.config.min_was}-"
                f"{self.config.max_was}); pool hosts serving: {state.serving}\n\n{output}",
            )
            return outcome

    def _skip(self, action: str, reason: str) -> str:
        log.info("%s: no step, %s", action, reason)
        return f"no step: {reason}"


# --- HTTP -----------------------------------------------------------------------------------------


def step_and_log(scaler: Scaler, action: str) -> None:
    log.info("%s", scaler.handle(action))


def answer(
    scaler: Scaler, method: str, path: str, body: bytes, start: Callable[[Callable[[], None]], None]
) -> tuple[int, dict[str, Any]]:
    """The status and JSON answer of one request; steps run through `start` (a thread), since a
    step takes minutes and Alertmanager waits seconds."""
    if method == "GET" and path == "/state":
        state = scaler.state()
        return 200, {"serving": state.serving, "last_step_at": state.last_step_at}
    if method != "POST" or path != "/alerts":
        return 404, {"error": f"no such endpoint: {method} {path} (POST /alerts, GET /state)"}
    try:
        actions = requested_actions(body)
    except BadCall as exc:
        log.warning("refused a call: %s", exc)
        return 400, {"error": str(exc)}
    for action in actions:
        start(functools.partial(step_and_log, scaler, action))
    return 202, {"accepted": actions}


def serve(scaler: Scaler) -> None:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self, method: str) -> None:
            length_text = self.headers.get("Content-Length") or "0"
            length = int(length_text) if length_text.isdigit() else -1
            if length < 0:
                status, data = 400, {"error": f"a Content-Length of {length_text!r}"}
            elif length > MAX_BODY_BYTES:
                status, data = 413, {"error": f"a body over {MAX_BODY_BYTES} bytes"}
            else:
                body = self.rfile.read(length) if length else b""
                status, data = answer(scaler, method, self.path, body, start_thread)
            raw = json.dumps(data).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            self._reply("GET")

        def do_POST(self) -> None:  # noqa: N802
            self._reply("POST")

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            log.info("%s %s", self.address_string(), format % args)

    def start_thread(work: Callable[[], None]) -> None:
        threading.Thread(target=work, daemon=True).start()

    server = ThreadingHTTPServer((scaler.config.listen, scaler.config.port), Handler)
    log.info("listening on %s:%d", scaler.config.listen, scaler.config.port)
    server.serve_forever()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        config = Config.from_dict(json.loads(args.config.read_text()))
    except (OSError, ValueError) as exc:
        print(f"autoscaler: {args.config}: {exc}", file=sys.stderr)
        return 2
    serve(Scaler(config, run_command(config), send_mail(config)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
