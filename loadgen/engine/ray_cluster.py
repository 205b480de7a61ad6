"""Joining Ray: a private local Ray unless told otherwise, a cluster's token only where it is
asked for. Ray is imported only to start or join it: a run in loadgen's own process never
imports it."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator

from loadgen.common.errors import UserError
from loadgen.engine import signals

RAY_CONNECT_S = 5.0


def reachable(address: str | None) -> None:
    """Refuses a Ray address nothing listens at, in seconds (ray.init would wait for minutes,
    printing its own retries): ``auto`` is the cluster last started on this machine, which may
    have stopped since. None is a private local Ray, started by the run."""
    if not address:
        return
    if address == "auto":
        from ray._private.services import find_bootstrap_address

        found = find_bootstrap_address(None)
        if not found:
            raise UserError("--ray-address auto: no Ray cluster was started on this machine; `ray start --head` starts one")
        address = found
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"Ray address {address!r}: write it as host:port (the head node's GCS, usually port 6379), or auto")
    try:
        socket.create_connection((host, int(port)), timeout=RAY_CONNECT_S).close()
    except OSError as e:
        why = e.strerror or type(e).__name__
        raise UserError(f"no Ray cluster answers at {address} ({why}): check --ray-address or $RAY_ADDRESS") from None


@contextlib.contextmanager
def ray_session(address: str | None) -> Iterator[None]:
    """Joins ``address``, or starts a private local Ray (never a cluster that happens to run on
    the machine: that is ``auto``), unless Ray is already up; leaves as it found."""
    import ray

    if ray.is_initialized():
        yield
        return
    # Token authentication stays on; only its notice is too loud for a command-line tool.
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)
    with _token_auth(address):
        try:
            with contextlib.nullcontext() if address else _apart_from_our_group():
                try:
                    ray.init(address=address or "local", include_dashboard=False, logging_level=logging.WARNING, configure_logging=True)
                except SystemExit as e:  # Ray's own SIGTERM handler while it starts: a stop like any other
                    ray.shutdown()
                    if e.code == signal.SIGTERM:
                        raise signals.stopped(signal.SIGTERM) from None
                    raise
            if threading.current_thread() is threading.main_thread():
                signals.install()  # ray.init put its own SIGTERM handler in place of ours
        except (ConnectionError, ValueError) as e:
            raise UserError(
                f"cannot connect to Ray at {address}: {e} (a cluster with token authentication needs its token: "
                "~/.ray/auth_token, $RAY_AUTH_TOKEN or $RAY_AUTH_TOKEN_PATH; `ray get-auth-token` on the head prints it)"
            ) from None
        try:
            yield
        finally:
            ray.shutdown()


@contextlib.contextmanager
def _apart_from_our_group() -> Iterator[None]:
    """Starts what runs inside in a process group of its own: a signal sent to loadgen's group
    (``timeout``, a terminal's SIGHUP) then reaches loadgen, which stops the run and its local
    Ray in order, and not Ray's processes, which would die under the run. Not possible when
    loadgen leads its group (a shell's job): Ray's processes ignore SIGINT there by themselves."""
    ours = os.getpgrp()
    if ours == os.getpid():
        yield
        return
    os.setpgid(0, 0)
    try:
        yield
    finally:
        os.setpgid(0, ours)


def _asks_for_a_token(address: str) -> bool:
    """Whether the cluster at ``address`` authenticates by token. Asked first because a driver
    with token authentication on also demands the token of the cluster's own calls to it: a
    cluster without it (``ray.cluster_utils``, ``RAY_AUTH_MODE=disabled``) then takes the
    driver for dead and cancels every actor it creates."""
    from ray._raylet import GcsClient  # type: ignore[attr-defined]  # (a compiled module without stubs)
    from ray.exceptions import AuthenticationError

    try:
        GcsClient(address=address)  # asks the cluster's id: refused without the right token
    except AuthenticationError:
        return True
    except Exception:  # anything else is for ray.init to say
        return False
    return False


@contextlib.contextmanager
def _token_auth(address: str | None) -> Iterator[None]:
    """Sends this machine's Ray token to a cluster named by its address that asks for one. Ray
    turns token authentication on by itself for a cluster it finds (``auto``) but never for an
    explicit address, while ``ray start --head`` turns it on whenever a token is at hand (any
    earlier local Ray leaves one in ~/.ray): the documented ``--ray-address HEAD:6379`` was
    refused. RAY_AUTH_MODE, when set, decides."""
    if address in (None, "auto") or "RAY_AUTH_MODE" in os.environ or not _asks_for_a_token(address):
        yield
        return
    from ray._private.authentication.authentication_token_setup import maybe_enable_token_auth_if_token_available

    maybe_enable_token_auth_if_token_available(warn_if_disabled=False)
    try:
        yield
    finally:
        os.environ.pop("RAY_AUTH_MODE", None)  # this process's next local Ray decides afresh
