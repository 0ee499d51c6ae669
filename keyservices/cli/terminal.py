"""ERP strings made safe to show on a terminal: control characters become visible escapes.

A customer name can hold anything the ERP's varchar column takes: ESC sequences that clear the
screen or recolour it, BEL, a CR that overwrites the line, a one-byte C1 CSI (0x9b), or a bidi
override that reorders what follows. Every printer in the CLI passes ERP data through
:func:`terminal_text`; rich tables also take it as ``Text``, so markup such as
``[link=...]`` is shown literally. Kept apart from ``console`` so that the error handler and the
stderr log formatter can use it without importing rich.
"""

from __future__ import annotations

import re
import sys

# C0 controls (ESC, BEL, CR, LF, TAB, ...), DEL, C1 controls, and the bidi embeddings,
# overrides and isolates (U+202A-U+202E, U+2066-U+2069)
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(ch: str) -> str:
    return _NAMED.get(ch) or (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")


def control_escaped(text: str, *, keep: str = "") -> str:
    """``text`` with every control character but those in ``keep`` written as an escape."""
    return _CONTROL.sub(lambda m: m.group() if m.group() in keep else _escape(m.group()), text)


def terminal_text(value: object, *, keep_newlines: bool = False) -> str:
    """An ERP value as the terminal must show it: ``"\\x1b[2J"`` instead of a cleared screen.

    ``keep_newlines`` for text of our own that spans lines (an error message listing problems);
    a single ERP value keeps none, so a name cannot forge a line of output.
    """
    if value is None:
        return ""
    text = value if isinstance(value, str) else str(value)
    return control_escaped(text, keep="\n" if keep_newlines else "")


def terminal_csv(text: str) -> str:
    """CSV as a terminal must show it: one row a line (CRLF ends, as written) and every control
    character inside a cell escaped, the CR and line break of a quoted cell included.

    Escaping the whole text but its line ends (``console.echo_data``) cannot tell a row's end
    from a lone CR in a customer name, which would overwrite the line it is on, or from a line
    break inside a quoted name, which would forge a row: the cells are read back as CSV instead.
    The data is unchanged apart from the escapes (a cell quoted only for its line break is then
    shown unquoted); a file or a pipe gets the CSV as it is, from the caller."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    for row in csv.reader(io.StringIO(text, newline="")):
        writer.writerow([control_escaped(cell) for cell in row])
    return out.getvalue()


def configure_streams() -> None:
    """Make stdout and stderr replace what their code page cannot show, instead of raising.

    Under Task Scheduler or any redirected output on Windows Python writes in the ANSI code page
    (cp1252), and a console window may be cp437: "Łódź" would end the run with a
    UnicodeEncodeError. Files (CSV, .eml, HTML, logs) are written UTF-8 elsewhere; this is only
    the terminal. Rich's consoles write through these same streams, so they follow.
    """
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is None or getattr(stream, "errors", "strict") != "strict":
            continue
        try:
            reconfigure(errors="replace")
        except (ValueError, OSError):  # a closed or detached stream: nothing to print to
            pass


__all__ = ["configure_streams", "control_escaped", "terminal_csv", "terminal_text"]
