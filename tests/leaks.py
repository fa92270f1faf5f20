"""The one check that no secret escaped: every broker, sink and daemon test calls it."""

from __future__ import annotations

from collections.abc import Iterable


def assert_no_secret_leaks(secrets: Iterable[str], *evidence: object, where: str = "") -> None:
    """No value of ``secrets`` in any piece of ``evidence``.

    A piece is text, bytes (a file, a body), an exception (its message, its repr and everything
    chained to it as cause or context) or any other object as its repr shows it (an exchange
    kept for ``run --record``). None is skipped. The failure names the piece, never the secret.
    """
    values = [value for value in secrets if value]
    for index, piece in enumerate(evidence):
        for kind, text in _texts(piece):
            for value in values:
                needle: str | bytes = value.encode() if isinstance(text, bytes) else value
                assert needle not in text, (
                    f"a secret ({len(value)} characters) leaked into {kind}"
                    f" (evidence {index}{f', {where}' if where else ''})"
                )


def _texts(piece: object) -> Iterable[tuple[str, str | bytes]]:
    if piece is None:
        return
    if isinstance(piece, str | bytes):
        yield type(piece).__name__, piece
        return
    if isinstance(piece, BaseException):
        chain: list[BaseException] = []
        seen: BaseException | None = piece
        while seen is not None and seen not in chain:
            chain.append(seen)
            yield type(seen).__name__, f"{seen} {seen!r} {seen.args!r}"
            seen = seen.__cause__ or seen.__context__
        return
    yield type(piece).__name__, repr(piece)
