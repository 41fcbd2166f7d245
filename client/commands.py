"""`cygnet up`, `down` and `status`: the command line's side of the engine.

client/cli.py parses arguments and imports this module only for these commands (start-up
time); this module imports the engine (client/engine.py), never the other way round. Exit
statuses come from the Failure kind (client/failure.py's EXIT_CODES).
"""
from __future__ import annotations

from client.no_system_openssl import import_without_system_openssl

import_without_system_openssl("asyncio")  # first: its ssl would load the system's OpenSSL too
import asyncio
import json
import logging
import os
import signal
import sys
import time
from pathlib import Path
from typing import Callable, Optional

from client import control
from client.engine import Tunnel
from client.failure import EXIT_FAILED, Failure, FailureKind, FatalError, exit_code
from client.profile import Profile
from client.status import Progress
from client.testing_hooks import test_only_hooks


def daemon_log_path(name: str) -> Path:
    """Where a detached `cygnet up --daemon` writes its progress lines and warnings."""
    return control.run_dir() / f"{name}.log"


async def _run(profile: Profile, secret, progress: Progress, on_up: Callable[[], None]) -> int:
    loop = asyncio.get_running_loop()
    tunnel = Tunnel(profile, secret, progress)
    try:
        tunnel.session_overrides, tunnel.esp_limits = test_only_hooks()
    except FatalError as error:
        return _report(progress, error.failure)
    # SIGHUP too: a closed terminal must not kill a foreground tunnel without its cleanup.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        loop.add_signal_handler(signum, tunnel.stop)
    server = None
    try:
        tunnel.open()
        server = await control.serve(profile.name, tunnel.handle_control)
        runner = asyncio.ensure_future(tunnel.run())
        await asyncio.wait({runner, tunnel.first_up}, return_when=asyncio.FIRST_COMPLETED)
        came_up = tunnel.first_up.done() and tunnel.first_up.result()
        if came_up:
            on_up()
        await runner
        if tunnel.failure is not None:
            return _report(progress, tunnel.failure)
        if came_up:
            progress.say("tunnel closed")
            return 0
        return _report(progress, Failure(FailureKind.STOPPED, "stopped before the tunnel came up"))
    except FatalError as error:
        return _report(progress, error.failure)
    finally:
        # The control socket goes last: `cygnet down` waits for it, and the tunnel is closed
        # only once its routes and addresses are gone.
        try:
            tunnel.close()
        finally:
            if server is not None:
                server.close()
                try:
                    control.socket_path(profile.name).unlink()
                except FileNotFoundError:
                    pass


def _report(progress: Progress, failure: Failure) -> int:
    progress.say(f"cygnet: {failure.message}")
    return exit_code(failure)


def _configure_logging() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    if os.environ.get("CYGNET_DEBUG"):  # Cygnet's own loggers only: pyroute2's dump netlink
        for name in ("cygnet", "ike", "client"):
            logging.getLogger(name).setLevel(logging.DEBUG)


def up(profile: Profile, daemon: bool = False) -> int:
    """`cygnet up`: bring the tunnel up and keep it up; 0 only if it came up."""
    from client.secrets import SecretError, get_secret

    _configure_logging()
    if control.is_alive(profile.name):
        print(f"cygnet: tunnel {profile.name} is already running (cygnet down {profile.name})", file=sys.stderr)
        return EXIT_FAILED
    try:
        needs_secret = profile.auth == "psk" or profile.needs_password
        secret = get_secret(profile) if needs_secret else None  # before detaching: it may prompt
        from client.credentials import ask_key_passphrase

        ask_key_passphrase(profile)  # an encrypted key without a passphrase source: ask now
        if getattr(profile, "pkcs11_module", None) is not None:
            from client.smartcard import get_pin

            secret = get_pin(profile)  # the token's PIN (client/smartcard.py)
    except SecretError as error:
        print(f"cygnet: {error}", file=sys.stderr)
        return exit_code(Failure(FailureKind.PASSWORD_MISSING, str(error)))
    if not daemon:
        return asyncio.run(_run(profile, secret, Progress(), on_up=lambda: None))
    return _daemonize(profile, secret)


def _daemonize(profile: Profile, secret) -> int:
    """Run the tunnel in a detached child; the parent prints its progress and exits once the
    tunnel is up (0) or has failed (1, whatever the kind: the reason is printed)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid:
        os.close(write_end)
        return _wait_for_detached(pid, read_end, profile.name)
    os.close(read_end)
    os.setsid()
    pipe = os.fdopen(write_end, "w")
    progress = Progress(pipe)

    def detached() -> None:
        progress.say("\0up")
        pipe.close()
        # From now on progress lines and warnings (the logging handler writes to fd 2) go to
        # the tunnel's log under the root-only run directory, readable by root alone.
        control.ensure_run_dir()
        log_fd = os.open(daemon_log_path(profile.name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(log_fd, 0o600)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(devnull)
        os.close(log_fd)
        progress.stream = sys.stdout
        progress.timestamps = True
        progress.say(f"detached (pid {os.getpid()}); the tunnel is up")

    code = asyncio.run(_run(profile, secret, progress, on_up=detached))
    os._exit(code)


def _wait_for_detached(pid: int, read_end: int, name: str) -> int:
    """The parent of `up --daemon`: relay the child's progress until it says "up" or ends."""
    ok = False
    with os.fdopen(read_end) as lines:
        try:
            for line in lines:
                if line.startswith("\0up"):
                    ok = True
                    break
                print(line, end="", flush=True)
        except KeyboardInterrupt:
            # Ctrl-C while waiting: the user gives up on this tunnel, not just on waiting
            # (the child has its own session and did not get the SIGINT).
            os.kill(pid, signal.SIGTERM)
            for line in lines:  # until the child has cleaned up and closed the pipe
                print(line, end="", flush=True)
            raise
    if ok:
        print(f"running in the background; log: {daemon_log_path(name)}", flush=True)
    return 0 if ok else EXIT_FAILED


def down(name: Optional[str] = None) -> int:
    """`cygnet down [NAME]`: close one tunnel (or the only one running)."""
    names = [name] if name else control.running_tunnels()
    if not names:
        print("cygnet: no tunnel is running", file=sys.stderr)
        return 1
    if len(names) > 1:
        print(f"cygnet: several tunnels run ({', '.join(names)}): name one", file=sys.stderr)
        return 2
    try:
        control.request(names[0], "down")
    except OSError:
        print(f"cygnet: tunnel {names[0]} is not running", file=sys.stderr)
        return 1
    deadline = time.monotonic() + 10
    while control.socket_path(names[0]).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    print(f"tunnel {names[0]} closed")
    return 0


def status(as_json: bool = False) -> int:
    """`cygnet status [--json]`: what every running tunnel is doing (the status model of
    client/status.py, from each tunnel's control socket)."""
    reports = []
    for name in control.running_tunnels():
        try:
            reports.append(control.request(name, "status")["status"])
        except (OSError, KeyError, ValueError):
            continue
    if as_json:
        print(json.dumps(reports, indent=2))
        return 0
    if not reports:
        print("no tunnel is running")
        return 0
    for report in reports:
        print(format_status(report))
    return 0


def format_status(s: dict) -> str:
    lines = [f"{s['name']}: {s['state']}, gateway {s['gateway']}"]
    if s.get("remote_id"):
        lines.append(f"  identities  {s['local_id']} → {s['remote_id']}")
    lines.append(f"  interface   {s['interface']}  virtual IP {', '.join(s['virtual_ips']) or 'none'}")
    if s.get("dns"):
        lines.append(f"  DNS         {' '.join(s['dns'])}" + (f"  search {' '.join(s['domains'])}" if s.get("domains") else ""))
    if s.get("ike_proposal"):
        lines.append(f"  IKE_SA      {s['ike_spi_i']}_i {s['ike_spi_r']}_r  {s['ike_proposal']}"
                     f"{'  (NAT-T)' if s.get('nat') else ''}")
        deadlines = [f"{what} in {s[key]} s" for what, key in (("rekey", "ike_rekey_in"),
                                                                ("reauthentication", "reauth_in"))
                     if s.get(key) is not None]
        if deadlines:
            lines.append(f"              {', '.join(deadlines)}")
    if s.get("up_since"):
        lines.append(f"  up for      {s['uptime']} s, reconnects {s['reconnects']}, "
                     f"rekeyed IKE_SA {s['ike_rekeys']}x, CHILD_SA {s['child_rekeys']}x")
    for c in s.get("children", []):
        algo = c["encryption"] + (f"/{c['integrity']}" if c["integrity"] else "")
        lines.append(f"  CHILD_SA    {c['spi_in']}_i {c['spi_out']}_o  {algo}  rekey in {c['rekey_in']} s")
        lines.append(f"              {', '.join(c['local_ts'])} === {', '.join(c['remote_ts'])}")
        if "bytes_in" in c:
            lines.append(f"              in {c['bytes_in']} B / {c['packets_in']} pkts, "
                         f"out {c['bytes_out']} B / {c['packets_out']} pkts")
    guards = (["kill switch"] if s.get("kill_switch") else []) + \
        [f"{family} blocked" for family in s.get("blocked", []) if not s.get("kill_switch")]
    if guards or s.get("dns_mode"):
        lines.append(f"  leaks       {', '.join(guards) or 'no kill switch'}"
                     + (f"; DNS {s['dns_mode']}" if s.get("dns_mode") else ""))
    if s.get("last_error"):
        lines.append(f"  last error  {s['last_error']}")
    return "\n".join(lines)
