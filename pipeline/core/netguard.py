"""Refuse network connections in this process: converters must never download anything at run time."""

from __future__ import annotations

import socket


class NetworkBlocked(RuntimeError):
    pass


def _refuse(*args, **kwargs):
    raise NetworkBlocked(f"network access attempted ({args[1:] if len(args) > 1 else args}) and refused: "
                         "the pipeline works offline")


def block_network() -> None:
    """Make every outgoing connection and name lookup in this process raise NetworkBlocked."""
    socket.socket.connect = _refuse  # type: ignore[method-assign]
    socket.socket.connect_ex = _refuse  # type: ignore[method-assign]
    socket.create_connection = _refuse  # type: ignore[assignment]
    socket.getaddrinfo = _refuse  # type: ignore[assignment]
