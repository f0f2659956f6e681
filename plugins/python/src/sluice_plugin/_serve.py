"""serve(): go-plugin's handshake and the plugin process's life."""

from __future__ import annotations

import logging
import os
import signal
import sys
import tempfile
import threading
import uuid
from concurrent import futures

import grpc

from . import _log
from ._proto import sluice_plugin_pb2_grpc as pb_grpc
from ._service import DEFAULT_MAX_MESSAGE, PROTOCOL_VERSION, GoPluginServices, Plugin, Service, log

__all__ = ["serve", "server_options", "MAGIC_COOKIE_KEY", "MAGIC_COOKIE_VALUE", "ENV_MAX_MESSAGE"]

# go-plugin's handshake, as plugins/internal/wire defines it.
MAGIC_COOKIE_KEY = "SLUICE_PLUGIN_MAGIC_COOKIE"
MAGIC_COOKIE_VALUE = "d5a1f3c8-sluice-plugin-v1"
CORE_PROTOCOL_VERSION = 1
ENV_MAX_MESSAGE = "SLUICE_PLUGIN_MAX_MESSAGE_BYTES"
# The static HTTP/2 flow-control window of both ends (wire.StreamWindow).
STREAM_WINDOW = 1 << 20


def server_options(max_message: int) -> list:
    return [
        ("grpc.max_receive_message_length", max_message),
        ("grpc.max_send_message_length", max_message),
        # A static window, as the Go side: no BDP probing growing gRPC's
        # buffers behind the host's credit window.
        ("grpc.http2.bdp_probe", 0),
        ("grpc.http2.lookahead_bytes", STREAM_WINDOW),
    ]


def _max_message() -> int:
    try:
        v = int(os.environ.get(ENV_MAX_MESSAGE, ""))
    except ValueError:
        return DEFAULT_MAX_MESSAGE
    return v if v > 0 else DEFAULT_MAX_MESSAGE


def _fail(msg: str) -> None:
    sys.__stderr__.write(msg.rstrip("\n") + "\n")
    sys.__stderr__.flush()
    sys.exit(1)


class _Life:
    """How the process ends: the host's Shutdown, or the host gone."""

    def __init__(self, svc: Service):
        self.svc = svc
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.reason = ""

    def end(self, reason: str) -> None:
        with self.lock:
            if not self.reason:
                self.reason = reason
        self.done.set()

    def conn_end(self) -> None:
        # The host holds its connection for the plugin's whole life. After
        # Close its end is the host's shutdown; otherwise the host exited,
        # crashed or was killed: an orphan must not linger.
        self.end("shutdown" if self.svc.closed.is_set() else "host gone")

    def watch_parent(self, ppid: int) -> None:
        # Backstop for the connection watch: the host is this process's
        # parent; when it dies the process is re-parented.
        while not self.done.wait(0.5):
            if os.getppid() != ppid:
                self.conn_end()
                return


def serve(plugin: Plugin, *, log_level: int = logging.INFO) -> None:
    """Runs the plugin until the host stops it; never returns.

    Call it from the plugin's entry point, and print nothing to stdout
    before it: go-plugin's handshake line goes there. SIGINT and SIGTERM are
    ignored (the host drains plugins itself); the process leaves when the
    host says so or when the host is gone. The logging module's records go
    to the host's log with their level; print() output is logged too.
    """
    if not isinstance(plugin, Plugin):
        _fail(f"sluice plugin: serve needs a sluice_plugin.Plugin, got {type(plugin).__name__}")
    if os.environ.get(MAGIC_COOKIE_KEY) != MAGIC_COOKIE_VALUE:
        _fail(
            "This program is a sluice plugin: sluice starts it (a pipeline node of type: plugin).\n"
            "It is not meant to be run by hand. Test it with sluice_plugin.testing, or run a pipeline."
        )
    versions = [v.strip() for v in os.environ.get("PLUGIN_PROTOCOL_VERSIONS", str(PROTOCOL_VERSION)).split(",")]
    if str(PROTOCOL_VERSION) not in versions:
        _fail(
            f"sluice plugin: the host speaks plugin protocol versions {','.join(versions)}, "
            f"this SDK speaks {PROTOCOL_VERSION}: use an SDK matching the sluice version"
        )

    # A terminal's Ctrl-C or systemd's SIGTERM reaches the whole process
    # group; the host must get to drain its plugins before they leave.
    # Python already ignores SIGPIPE (writes raise instead, and the log
    # handler swallows them).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

    max_message = _max_message()
    svc = Service(plugin, max_message)
    life = _Life(svc)
    go = GoPluginServices(on_shutdown=lambda: life.end("shutdown"), on_conn_end=life.conn_end)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16), options=server_options(max_message))
    pb_grpc.add_ProcessorServicer_to_server(svc, server)
    server.add_generic_rpc_handlers(go.handlers())

    sock_dir = os.environ.get("PLUGIN_UNIX_SOCKET_DIR") or tempfile.mkdtemp(prefix="sluice-plugin-")
    sock = os.path.join(sock_dir, "plugin" + uuid.uuid4().hex[:10])
    try:
        server.add_insecure_port("unix:" + sock)
    except RuntimeError as e:
        _fail(f"sluice plugin: cannot listen on {sock}: {e}")
    server.start()

    _log.install(log_level)
    # The handshake line, then nothing else on stdout: anything a library
    # writes to file descriptor 1 goes to stderr (the host's log) instead.
    line = f"{CORE_PROTOCOL_VERSION}|{PROTOCOL_VERSION}|unix|{sock}|grpc|\n".encode()
    os.write(1, line)
    os.dup2(2, 1)

    threading.Thread(target=life.watch_parent, args=(os.getppid(),), name="sluice-hostwatch", daemon=True).start()
    life.done.wait()
    if life.reason == "host gone":
        log.warning("host connection closed without Close; exiting")
        t = threading.Thread(target=_close_quietly, args=(svc,), daemon=True)
        t.start()
        t.join(5)
    go.stopping.set()
    server.stop(grace=1).wait(2)
    try:
        os.remove(sock)
    except OSError:
        pass
    for s in (sys.stdout, sys.stderr):
        try:
            s.flush()
        except Exception:
            pass
    # Not sys.exit: gRPC's threads must not keep the process up.
    os._exit(0)


def _close_quietly(svc: Service) -> None:
    try:
        svc.close_hook()
    except Exception as e:
        log.error("close failed", extra={"err": f"{type(e).__name__}: {e}"})
