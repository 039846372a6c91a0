"""The one rule for letter prefixes on multiple-choice options, shared by every importer that reads options.

The prompt writes the letters itself ("A. a rabbit", videoreasoner/answers/format.py), so a record's
option is the bare text. A prefix is a capital letter written `A.`, `A)`, `(A)` or `A:`, then at least
one space, then the text ("A. a rabbit"). The whitespace is required so that "U.S. Army" or "A.M." is
text, not a prefix. The rule:
- no option carries a prefix: the options are kept as written;
- every option carries the prefix of its position (A, B, C, … in order): the prefixes are stripped,
  once ("A. a rabbit" -> "a rabbit");
- otherwise it is an error naming the option: a prefix that is not its position's letter ("B. x" as
  the first option), options of which only some carry their letter, or a prefix repeated in the text
  ("A. A. a rabbit", which the prompt would show as "A. A. A. a rabbit").
Formats whose options always carry letters (Video-R1, Video-MME, sharegpt option lines) pass
`required=True`: an option without its prefix is then an error too, and the space after the prefix
may be missing ("A.red", as those importers always accepted), since no option there is bare text.
"""
from __future__ import annotations

import re
from typing import Any

from videoreasoner.core.schema import OPTION_LETTERS, RecordError, option_letter

OPTION_PREFIX = re.compile(r"\s*(?:\(([A-Z])\)|([A-Z])[.):])\s+(?=\S)")
_REQUIRED_PREFIX = re.compile(r"\s*(?:\(([A-Z])\)|([A-Z])\s*[.):])\s*(?=\S)")  # the space may be missing


def prefix_letter(text: str, required: bool = False) -> tuple[str, str] | None:
    """(letter, text after the prefix) when `text` starts with a letter prefix, else None; `required`:
    the looser form of a format whose options always carry letters."""
    match = (_REQUIRED_PREFIX if required else OPTION_PREFIX).match(text)
    if not match:
        return None
    return match.group(1) or match.group(2), text[match.end():].strip()


def strip_option_prefixes(options: Any, where: str, field: str = "options",
                          required: bool = False) -> tuple[list[str], bool]:
    """(option texts, whether prefixes were stripped) under the module's rule; errors name `field[i]`.

    `options` must be a list of 2 to 26 non-empty strings. `required`: every option must carry its
    prefix (a format whose options always do)."""
    if not isinstance(options, list) or not 2 <= len(options) <= len(OPTION_LETTERS):
        raise RecordError(where, field, f"expected a list of 2 to {len(OPTION_LETTERS)} options, got {options!r}")
    for i, option in enumerate(options):
        if not isinstance(option, str) or not option.strip():
            raise RecordError(where, f"{field}[{i}]", f"not non-empty text: {option!r}")
    found = [prefix_letter(option, required) for option in options]
    if not required and not any(found):
        return [option.strip() for option in options], False
    texts = []
    for i, (option, prefix) in enumerate(zip(options, found)):
        expected = option_letter(i)
        if prefix is None:
            why = ("options must be written 'A. text'" if required else
                   "some options carry a letter prefix and this one does not: give every option its "
                   "letter (A, B, … in order) or none")
            raise RecordError(where, f"{field}[{i}]", f"{option!r} has no letter prefix {expected}: {why}")
        letter, text = prefix
        if letter != expected:
            raise RecordError(where, f"{field}[{i}]", f"{option!r} carries letter {letter} but is option "
                                                      f"{expected} (letters must run A, B, C, … in order)")
        again = prefix_letter(text)
        if again is not None and again[0] == letter:
            raise RecordError(where, f"{field}[{i}]", f"{option!r} repeats its letter prefix {letter}")
        texts.append(text)
    return texts, True
