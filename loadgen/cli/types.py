"""Argument types shared by the subcommands: a bad value is refused by argparse, in one line
and before anything starts."""

from __future__ import annotations

import argparse


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65_535:
        raise argparse.ArgumentTypeError(f"{value} is not a port: use 1–65535, or 0 to pick a free one")
    return value


def positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} seconds: use a duration above 0")
    return value


def endpoint_list(text: str) -> list[str]:
    """Comma-separated URLs; an empty list (an unset shell variable) is an error, not 'use the devnet'."""
    urls = [u.strip() for u in text.split(",") if u.strip()]
    if not urls:
        raise argparse.ArgumentTypeError(
            "no URL given (an empty variable?): pass http://HOST:PORT[,…], or leave --endpoints out for the devnet"
        )
    return urls
