"""Fast path over big oslo.log files: find candidate lines with byte-level searches instead of parsing every line.

`candidate_blocks()` yields runs of consecutive lines: each line containing a token (e.g. b" ERROR ") plus
the lines that continue it (unprefixed lines such as `(Background on this error ...)`, and lines with the
same timestamp+pid prefix: the traceback). Feeding them to the parser's Assembler gives the same events of
interest as a full parse, at a fraction of the cost. Memory is bounded by the chunk size plus `max_line_bytes`.
"""

from __future__ import annotations

import re
from typing import IO, Iterator, Sequence

CHUNK = 256 << 10


def _is_prefixed(line: bytes) -> bool:
    """Starts with an oslo timestamp (YYYY-...)."""
    return line[4:5] == b"-" and line[:4].isdigit()


class Tokens:
    """What to search for: short tokens in one regex pass, long literal tokens with find().

    When every short token contains an 'R' (all the level tokens do: ' ERROR ', ' CRITICAL ', ' TRACE ',
    ' WARNING '), the regex is anchored on that rare capital, which lets the regex engine skip ahead with
    a fast literal search."""

    def __init__(self, tokens: Sequence[bytes]):
        uniq = list(dict.fromkeys(tokens))
        short = [t for t in uniq if len(t) < 20]
        self.long = tuple(t for t in uniq if len(t) >= 20)
        self.verify: dict[bytes, list[tuple[int, bytes]]] | None = None
        self.pattern: re.Pattern[bytes] | None = None
        if short and all(b"R" in t for t in short):
            self.verify = {}
            for t in short:
                i = t.index(b"R")
                self.verify.setdefault(t[i:], []).append((i, t))
            alts = sorted(self.verify, key=len, reverse=True)
            self.pattern = re.compile(b"R(?:" + b"|".join(re.escape(a[1:]) for a in alts) + b")")
        elif short:
            self.pattern = re.compile(b"|".join(re.escape(t) for t in short))

    def positions(self, region: bytes | bytearray, endpos: int) -> list[int]:
        """Start offsets (ascending) of the tokens in region[:endpos]."""
        hits: list[int] = []
        if self.pattern is not None:
            # anchored matches are not verified: a rare false hit (e.g. 'MIRROR ') only costs a parse of
            # its line, whose level the assembler checks anyway
            hits = [m.start() for m in self.pattern.finditer(region, 0, endpos)]
        for tok in self.long:
            find = region.find
            p = find(tok, 0, endpos)
            while p >= 0:
                hits.append(p)
                p = find(tok, p + 1, endpos)
        if self.long and (self.pattern is not None or len(self.long) > 1):
            hits.sort()
        return hits


def _reader(stream: IO[bytes]):
    """readinto(memoryview) for any binary stream (paramiko files may lack it). A buffered stream reads
    at most once per call (readinto1), so data before a broken end (truncated .gz) is not lost."""
    readinto = getattr(stream, "readinto1", None) or getattr(stream, "readinto", None)
    if readinto is not None:
        return readinto

    def fallback(view: memoryview) -> int:
        data = stream.read(len(view))
        view[: len(data)] = data
        return len(data)

    return fallback


def candidate_blocks(stream: IO[bytes], tokens: Sequence[bytes], max_line_bytes: int, *, start: int = 0,
                     extend: bool = True, chunk_size: int = CHUNK) -> Iterator[tuple[int, bytes]]:
    """(offset, block) runs of candidate lines; a block holds whole lines joined by newlines (none at the end).

    Reads into one reused buffer (no per-chunk allocation); memory is chunk_size + max_line_bytes."""
    search = Tokens(tokens)
    buf = bytearray(chunk_size + max_line_bytes + 1)
    view = memoryview(buf)
    readinto = _reader(stream)
    base = start  # file offset of buf[0]
    n = 0  # valid bytes in buf
    carry: bytes | None = None  # continuation prefix of the last hit, when it reached the end of a region
    skipping = False  # inside an over-long line we already cut
    while True:
        room = min(chunk_size, len(buf) - n)
        got = readinto(view[n:n + room]) or 0
        eof = got == 0
        if skipping:
            nl = buf.find(b"\n", n, n + got)
            if nl < 0 and not eof:
                base += got
                continue
            skipping = False
            cut = (n + got) if nl < 0 else nl + 1
            base += cut - n
            buf[n:n + got - (cut - n)] = buf[cut:n + got]
            got -= cut - n
        n += got
        limit = n if eof else buf.rfind(b"\n", 0, n) + 1
        if limit == 0 and not eof:
            if n > max_line_bytes:  # one line longer than allowed: test its head, skip the rest
                head = bytes(view[:max_line_bytes + 1])  # one byte more than allowed: the reader sees the cut
                if search.positions(head, len(head)):
                    yield base, head
                carry = None
                skipping = True
                base += n
                n = 0
            continue
        carry_in, carry = carry, None
        for offset, (bs, be), carry in _scan_region(buf, limit, base, search, carry_in, extend):
            yield offset, bytes(view[bs:be])
        if limit < n:
            buf[: n - limit] = buf[limit:n]
        base += limit
        n -= limit
        if eof:
            return


# A hit line with its continuation lines, matched in C by the regex engine: the line's 'DATE TIME PID '
# prefix is captured, and following lines continue the block while they carry the same prefix (the
# traceback of oslo.log) or carry no timestamp at all (`(Background on this error ...)`).
_NOT_DATED = rb"(?!\d{4}-\d\d-\d\d[ T])"
_BLOCK = re.compile(rb"(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d[.,\d]* (?:\d+ )?)[^\n]*(?:\n(?:\1|" + _NOT_DATED + rb")[^\n]*)*")
_UNDATED_BLOCK = re.compile(rb"[^\n]*(?:\n" + _NOT_DATED + rb"[^\n]*)*")
_LINE = re.compile(rb"[^\n]*")


def _continuation(prefix: bytes) -> re.Pattern[bytes]:
    """Lines continuing a block whose hit line was in the previous region."""
    p = re.escape(prefix)
    return re.compile(rb"(?:" + p + rb"|" + _NOT_DATED + rb")[^\n]*(?:\n(?:" + p + rb"|" + _NOT_DATED + rb")[^\n]*)*")


def _scan_region(buf: bytearray, size: int, base: int, search: Tokens, carry: bytes | None, extend: bool):
    """Blocks in buf[:size] (complete lines): (file offset, (start, end) in buf, prefix still open at the end)."""
    last = size - 1 if buf[size - 1:size] == b"\n" else size  # end of the last line
    hits = search.positions(buf, size)
    pos = 0
    if carry is not None and extend:
        m = _continuation(carry).match(buf, 0, last)
        if m and m.end() > 0:
            end = m.end()
            yield base, (0, end), (carry if end >= last else None)
            pos = end + 1
    rfind = buf.rfind
    for h in hits:
        if h < pos:
            continue
        ls = rfind(b"\n", pos, h) + 1 or pos
        if not extend:
            m = _LINE.match(buf, ls, last)
            prefix = None
        else:
            m = _BLOCK.match(buf, ls, last)
            if m is not None:
                prefix = m.group(1)
            else:
                m = _UNDATED_BLOCK.match(buf, ls, last)
                prefix = None
        end = m.end()  # type: ignore[union-attr]
        yield base + ls, (ls, end), (bytes(prefix) if prefix is not None and end >= last else None)
        pos = end + 1
        if pos >= size:
            return


def sniff_oslo(head: bytes) -> bool:
    """Does this look like an oslo.log file (most non-empty lines start with a YYYY-MM-DD timestamp)?"""
    lines = [ln for ln in head.split(b"\n")[:200] if ln.strip()]
    if not lines:
        return False
    prefixed = sum(1 for ln in lines if _is_prefixed(ln))
    return prefixed * 2 >= len(lines) and not head.startswith(b"__CURSOR=")
