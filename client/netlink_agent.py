"""A short-lived child process that owns pyroute2 and makes the engine's netlink calls.

Why a process: pyroute2 is the largest import `cygnet up` has (~80 ms and ~6 MB resident with
its message classes), and the engine needs it only while a tunnel is being set up or torn
down. A forked child imports it in parallel with the engine's own start-up (a second core
works while the first one imports asyncio and the protocol core), does the netlink work, and
exits when the engine `release()`s it: the connected engine never holds pyroute2's memory.
The next change (teardown, a new virtual IP after reauthentication) forks a fresh agent.

The child is a fork of the engine, so requests are `marshal`led plain values over a private
socketpair (same program, same interpreter; nothing else can reach the pair). It answers one
request at a time: the name of an `IPRoute` method and its arguments; pyroute2's messages come
back as plain dicts (their fields and attributes), which keeps `route.get("RTA_OIF")` working
on this side.
"""

from __future__ import annotations

import marshal
import os
import signal
import socket
import struct
import sys
import types

_LENGTH = struct.Struct("!I")

# IPRoute methods the engine may call (client/netconfig.py, client/tun.py).
METHODS = frozenset({"route", "addr", "link"})
# Not an IPRoute method: dataplane = auto's probe for kernel ESP, which needs pyroute2 too.
PROBE_KERNEL_ESP = "probe_kernel_esp"


class NetlinkError(OSError):
    """A netlink request the kernel refused; `code` is the errno (like pyroute2's)."""

    def __init__(self, code: int, message: str = ""):
        super().__init__(code, message or os.strerror(code))
        self.code = code


class AgentGone(OSError):
    """The agent process died (it should not: it only exits when released). An OSError like
    a netlink failure, so the engine fails the change the same way; the next call forks anew."""


def _send(sock: socket.socket, value) -> None:
    data = marshal.dumps(value)
    sock.sendall(_LENGTH.pack(len(data)) + data)


def _receive(sock: socket.socket):
    header = _receive_exactly(sock, _LENGTH.size)
    if header is None:
        return None
    data = _receive_exactly(sock, _LENGTH.unpack(header)[0])
    if data is None:
        return None
    return marshal.loads(data)


def _receive_exactly(sock: socket.socket, size: int) -> bytes | None:
    chunks, missing = [], size
    while missing:
        chunk = sock.recv(missing)
        if not chunk:
            return None
        chunks.append(chunk)
        missing -= len(chunk)
    return b"".join(chunks)


class NetlinkAgent:
    """The engine's side: `ipr` is an IPRoute look-alike whose calls run in the agent."""

    def __init__(self):
        self._sock: socket.socket | None = None
        self._pid: int | None = None
        self._early_probe = False  # the agent's first message is the kernel ESP probe's answer
        self.ipr = _IpRouteProxy(self)

    def start(self, probe_kernel_esp: bool = False) -> None:
        """Fork the agent; it imports pyroute2 and opens its socket while we go on. With
        probe_kernel_esp, it first probes for kernel ESP (see probe_kernel_esp())."""
        if self._sock is not None:
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        pid = os.fork()
        if pid == 0:  # the child: never returns
            ours.close()
            _agent_main(theirs, probe_kernel_esp)
        theirs.close()
        ours.set_inheritable(False)
        self._sock, self._pid, self._early_probe = ours, pid, probe_kernel_esp

    def probe_kernel_esp(self) -> str | None:
        """client.xfrm.probe_esp(), run in the agent so the engine need not load pyroute2 and
        the XFRM messages just to learn that it will not use them. Asked for at start(), the
        answer is ready before pyroute2's routing half has loaded."""
        if self._early_probe:
            self._early_probe = False
            return self._answer(PROBE_KERNEL_ESP)
        return self.call(PROBE_KERNEL_ESP)

    def call(self, method: str, *args, **kwargs):
        if method not in METHODS and method != PROBE_KERNEL_ESP:
            raise ValueError(f"not an IPRoute call the agent makes: {method}")
        self.start()
        if self._early_probe:  # nobody asked for it: it must not pass for this call's answer
            self.probe_kernel_esp()
        try:
            _send(self._sock, (method, args, kwargs))
        except OSError as error:
            self._reap()
            raise AgentGone(f"the netlink agent stopped before {method}(): {error}") from None
        return self._answer(method)

    def _answer(self, method: str):
        try:
            answer = _receive(self._sock)
        except OSError as error:
            answer = None
            reason = str(error)
        else:
            reason = "it exited"
        if answer is None:
            self._reap()
            raise AgentGone(f"the netlink agent stopped during {method}(): {reason}")
        kind, value = answer
        if kind == "ok":
            return value
        if kind == "netlink":
            raise NetlinkError(*value)
        raise OSError(value)

    def release(self) -> None:
        """Let the agent exit (and take pyroute2's memory with it); the next call forks anew."""
        if self._sock is None:
            return
        try:
            _send(self._sock, None)  # "exit"
        except OSError:
            pass
        self._reap()

    def _reap(self) -> None:
        self._early_probe = False
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        if self._pid is not None:
            try:
                os.waitpid(self._pid, 0)
            except ChildProcessError:
                pass
            self._pid = None


class _IpRouteProxy:
    """`agent.ipr.route("add", **spec)` runs `IPRoute().route("add", **spec)` in the agent."""

    def __init__(self, agent: NetlinkAgent):
        self._agent = agent

    def __getattr__(self, method: str):
        if method not in METHODS:
            raise AttributeError(method)
        return lambda *args, **kwargs: self._agent.call(method, *args, **kwargs)


# ---------------------------------------------------------------------------- the child


def _agent_main(sock: socket.socket, probe_kernel_esp: bool = False) -> None:
    """Serve requests until told to exit or the engine goes away; then _exit (no atexit
    handlers, no flushing of the engine's buffers: they are the parent's)."""
    code = 0
    try:
        # Ctrl-C reaches the whole process group; the engine handles it and still needs us
        # to remove its routes. We go when the engine releases us or exits.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)
        # Nothing of the engine's but our end of the pair (and stderr, for a crash's trace):
        # a TUN device, a UDP port or the pipe a caller reads the engine's progress from must
        # close when the engine closes it, not when we exit.
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        os.dup2(devnull, 1)
        os.closerange(3, sock.fileno())
        os.closerange(sock.fileno() + 1, 1 << 20)
        # Forked from inside the engine's running asyncio loop, this thread still counts as
        # running it; pyroute2's synchronous IPRoute runs a loop of its own, so forget it.
        asyncio_events = sys.modules.get("asyncio.events")
        if asyncio_events is not None:
            asyncio_events._set_running_loop(None)
        if probe_kernel_esp:  # the engine waits for this before it opens its TUN device
            _send(sock, ("ok", _probe_kernel_esp()))
        ipr = _open_iproute()
        # pyroute2 builds parts of its request machinery on first use: do that now, while the
        # engine contacts the gateway, not after the IKE_AUTH response when the calls come.
        try:
            ipr.route("get", dst="127.0.0.1")
            ipr.link("get", index=1)
        except Exception:  # noqa: BLE001 — e.g. loopback down: only the warm-up is lost
            pass
        while True:
            request = _receive(sock)
            if request is None:
                break
            method, args, kwargs = request
            try:
                if method == PROBE_KERNEL_ESP:
                    _send(sock, ("ok", _probe_kernel_esp()))
                    continue
                _send(sock, ("ok", _plain(getattr(ipr, method)(*args, **kwargs))))
            except Exception as error:  # noqa: BLE001 — every failure goes back to the engine
                code_attr = getattr(error, "code", None)
                if type(error).__name__ == "NetlinkError" and isinstance(code_attr, int):
                    text = error.args[1] if len(error.args) > 1 and isinstance(error.args[1], str) else ""
                    _send(sock, ("netlink", (code_attr, text)))
                else:
                    _send(sock, ("error", f"{type(error).__name__}: {error}"))
        ipr.close()
    except ConnectionError:
        # The engine went away (e.g. it refused a bad secret right after start) while we
        # still had an answer for it: nothing is left to serve, and nothing worth a trace.
        pass
    except BaseException:  # noqa: BLE001 — the child must never unwind into the engine's code
        code = 1
        try:
            import traceback

            traceback.print_exc()  # to the engine's stderr; requests carry no secrets
        except BaseException:  # noqa: BLE001
            pass
    finally:
        os._exit(code)


def _probe_kernel_esp() -> str | None:
    import_pyroute2_lazily()
    from client import xfrm  # pyroute2's netlink base only: not the routing half, not asyncio

    return xfrm.probe_esp()


def _open_iproute():
    # Not `import pyroute2`: its __init__ loads every netlink family (see import_pyroute2_lazily).
    import_pyroute2_lazily()
    from pyroute2.iproute import IPRoute

    return IPRoute()


_SCALARS = (int, float, str, bytes, bool, type(None))


def _plain(value):
    """pyroute2 messages → dicts of their fields and attributes: values `marshal` can carry
    (anything else becomes its text; the engine reads only addresses, indexes and metrics)."""
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, (list, tuple, types.GeneratorType)):
        return [_plain(item) for item in value]
    if hasattr(value, "get_attrs") and hasattr(value, "fields"):  # a message (also a dict)
        plain = {name: _plain(value.get(name)) for name, *_ in value.fields if name != "attrs"}
        for name, attr_value in value.get("attrs", []):
            plain.setdefault(name, _plain(attr_value))
        return plain
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return str(value)


def import_pyroute2_lazily() -> None:
    """pyroute2's __init__ imports every family it supports (IPDB, NDB, conntrack, nl80211…:
    ~12 MB, 200+ ms); the tunnel needs only netlink, rtnetlink and XFRM. Register the package
    without running its __init__, so `import pyroute2.iproute` loads just that. The first access
    to a top-level name (`from pyroute2 import NDB`) runs the real __init__ then."""
    if "pyroute2" in sys.modules:
        return
    import importlib.util
    import threading

    spec = importlib.util.find_spec("pyroute2")
    if spec is None or spec.loader is None:
        return  # not installed: the engine reports that when it needs it
    package = importlib.util.module_from_spec(spec)  # __path__ set, __init__ not run
    lock = threading.Lock()  # the engine imports pyroute2 on worker threads too

    def __getattr__(name: str):
        if importlib.util.find_spec(f"pyroute2.{name}") is not None:
            return importlib.import_module(f"pyroute2.{name}")  # `from pyroute2 import config`
        with lock:
            if package.__dict__.get("__getattr__") is __getattr__:
                del package.__getattr__
                spec.loader.exec_module(package)  # the real pyroute2/__init__.py
        return getattr(package, name)

    package.__getattr__ = __getattr__
    sys.modules["pyroute2"] = package


_prestarted: NetlinkAgent | None = None


def prestart(probe_kernel_esp: bool = False) -> None:
    """Fork the agent now, at the very start of `cygnet up`, so that pyroute2's import runs
    while the engine imports its own modules (and the kernel ESP probe, if the profile's
    data plane needs it, is answered by the time the engine asks)."""
    global _prestarted
    if _prestarted is None:
        _prestarted = NetlinkAgent()
        _prestarted.start(probe_kernel_esp)


def new_agent() -> NetlinkAgent:
    """The prestarted agent if there is one (once), else a fresh one that forks on first use."""
    global _prestarted
    agent, _prestarted = _prestarted, None
    return agent or NetlinkAgent()
