"""Reads the exact request/response bytes out of the real-flare-1.3.4 transcripts.

Notation of the transcripts: bytes escaped; \\r, \\n (and \\t) are the real CR/LF (tab) bytes, each \\n is
followed by a real newline for readability; other non-printables as \\xNN. Every block is
checked against the byte count its header gives; abridged blocks ("... [N more bytes ...
 elided ...]") and blocks whose size differs are skipped.
"""
import re
import sys
from pathlib import Path

HEAD = re.compile(r'^(>>> request|<<< response) \((\d+) bytes')


def unescape(text):
    out = bytearray()
    i = 0
    while i < len(text):
        c = text[i]
        if c == '\\' and i + 1 < len(text):
            n = text[i + 1]
            if n == 'r':
                out += b'\r'; i += 2; continue
            if n == 'n':
                out += b'\n'; i += 2; continue
            if n == 't':
                out += b'\t'; i += 2; continue
            if n == '\\':
                out += b'\\'; i += 2; continue
            if n == 'x' and i + 3 < len(text) and re.match(r'[0-9a-fA-F]{2}', text[i + 2:i + 4]):
                out.append(int(text[i + 2:i + 4], 16)); i += 4; continue
        out += c.encode('utf-8')
        i += 1
    return bytes(out)


def exchanges(path):
    """Yields (section_title, request_bytes, response_bytes) for every exchange of a file."""
    lines = Path(path).read_text(encoding='utf-8').split('\n')
    section = ''
    request = None
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith('## '):
            section = line
            request = None
            i += 1
            continue
        m = HEAD.match(line)
        if not m:
            i += 1
            continue
        size = int(m.group(2))
        i += 1
        body = []
        while i < len(lines) and not lines[i].startswith(('## ', '>>> ', '<<< ')) and lines[i] != '':
            body.append(lines[i])
            i += 1
        if any(b.startswith('... [') and 'elided' in b for b in body):
            continue  # abridged in the transcript: not the exact bytes
        data = unescape(''.join(body))
        if len(data) != size:
            # e.g. paths replaced by "<run>" in the transcript: not the exact bytes, skip
            print(f'skipped {Path(path).name}: {section[:40]}: {m.group(1)} decodes to {len(data)} bytes, '
                  f'header says {size}', file=sys.stderr)
            if m.group(1).startswith('>>>'):
                request = None
            continue
        if m.group(1).startswith('>>>'):
            request = data
        else:
            yield section, request, data


if __name__ == '__main__':
    for p in sys.argv[1:]:
        for sec, req, resp in exchanges(p):
            print(Path(p).name, sec[:60], repr(req)[:50], len(resp), repr(resp[:60]))
