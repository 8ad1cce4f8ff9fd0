"""Fast path over big oslo.log files: find candidate lines with byte-level searches instead of parsing every line.

`candidate_lines()` yields only the lines containing one of the tokens (e.g. b" ERROR ") plus the lines that
continue them (unprefixed lines such as `(Background on this error ...)`, and lines with the same
timestamp+pid prefix). Feeding them to the parser's Assembler gives the same events of interest as a full
parse, at a fraction of the cost. Memory is bounded by the chunk size plus `max_line_bytes`.
"""

from __future__ import annotations

from typing import IO, Iterator, Sequence

CHUNK = 4 << 20
MAX_EXTEND = 2000  # continuation lines followed after one hit


def _is_prefixed(line: bytes) -> bool:
    """Starts with an oslo timestamp (YYYY-...)."""
    return line[4:5] == b"-" and line[:4].isdigit()


def _prefix_of(line: bytes) -> bytes:
    """'DATE TIME PID ' of an oslo line (what its own continuation lines start with)."""
    cut = -1
    for _ in range(3):
        cut = line.find(b" ", cut + 1)
        if cut < 0:
            return line
    return line[: cut + 1]


def candidate_lines(stream: IO[bytes], tokens: Sequence[bytes], max_line_bytes: int, *, start: int = 0,
                    extend: bool = True, chunk_size: int = CHUNK) -> Iterator[tuple[int, bytes, bool, int]]:
    """(offset, line, truncated, end) for each line containing a token, plus its continuation lines."""
    tokens = tuple(dict.fromkeys(tokens))
    base = start  # file offset of buf[0]
    buf = b""
    ext_prefix: bytes | None = None  # following continuation lines of the last hit
    ext_budget = 0
    skipping = False  # inside an over-long line we already cut
    read = stream.read
    while True:
        data = read(chunk_size)
        eof = not data
        if skipping:
            nl = data.find(b"\n")
            if nl < 0 and not eof:
                base += len(data)
                continue
            skipping = False
            cut = len(data) if nl < 0 else nl + 1
            base += cut
            data = data[cut:]
        buf = buf + data if buf else data
        limit = len(buf) if eof else buf.rfind(b"\n") + 1
        if limit == 0 and not eof:
            if len(buf) > max_line_bytes:  # one line longer than allowed: test its head, skip the rest
                head = buf[:max_line_bytes]
                if any(t in head for t in tokens):
                    ext_prefix, ext_budget = _prefix_of(head), MAX_EXTEND
                    yield base, head, True, base + len(buf)
                skipping = True
                base += len(buf)
                buf = b""
            continue
        region = buf if limit == len(buf) else buf[:limit]
        for offset, line, trunc, hit in _scan_region(region, base, tokens, max_line_bytes, ext_prefix, ext_budget, extend):
            if hit:
                ext_prefix, ext_budget = _prefix_of(line), MAX_EXTEND
            elif line is None:  # extension state carried over
                ext_prefix, ext_budget = trunc  # type: ignore[misc]
                continue
            else:
                ext_budget -= 1
            yield offset, line, trunc, offset + len(line) + 1
        buf = buf[limit:]
        base += limit
        if eof:
            return


def _scan_region(region: bytes, base: int, tokens: tuple[bytes, ...], max_line_bytes: int,
                 ext_prefix: bytes | None, ext_budget: int, extend: bool):
    """Hits in a region of complete lines. Yields (offset, line, truncated, is_hit); a final
    (None, None, (prefix, budget), False) carries the extension state to the next region."""
    find = region.find
    n = len(region)
    pos = 0
    nxt = [find(t) for t in tokens]
    while pos < n:
        # continuation lines of the previous hit
        while extend and ext_prefix is not None and ext_budget > 0 and pos < n:
            le = find(b"\n", pos)
            if le < 0:
                le = n
            line = region[pos:le]
            if _is_prefixed(line) and not line.startswith(ext_prefix):
                ext_prefix = None
                break
            trunc = len(line) > max_line_bytes
            if any(t in line for t in tokens):
                break  # a hit of its own: handled below
            yield base + pos, line[:max_line_bytes] if trunc else line, trunc, False
            ext_budget -= 1
            pos = le + 1
        if pos >= n:
            break
        h = -1
        for i, p in enumerate(nxt):
            if 0 <= p < pos:
                p = nxt[i] = find(tokens[i], pos)
            if p >= 0 and (h < 0 or p < h):
                h = p
        if h < 0:
            ext_prefix = None
            break
        ls = region.rfind(b"\n", pos, h) + 1 or pos
        if ls < pos:
            ls = pos
        le = find(b"\n", h)
        if le < 0:
            le = n
        line = region[ls:le]
        trunc = len(line) > max_line_bytes
        if trunc:
            line = line[:max_line_bytes]
        yield base + ls, line, trunc, True
        ext_prefix, ext_budget = _prefix_of(line), MAX_EXTEND
        pos = le + 1
    yield None, None, (ext_prefix, ext_budget), False


def sniff_oslo(head: bytes) -> bool:
    """Does this look like an oslo.log file (most non-empty lines start with a YYYY-MM-DD timestamp)?"""
    lines = [ln for ln in head.split(b"\n")[:200] if ln.strip()]
    if not lines:
        return False
    prefixed = sum(1 for ln in lines if _is_prefixed(ln))
    return prefixed * 2 >= len(lines) and not head.startswith(b"__CURSOR=")
