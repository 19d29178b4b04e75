"""Text for a terminal: control characters escaped, everything else left as it is."""

from __future__ import annotations

from om_actors.terminal import markup, printable


def test_every_control_character_is_shown_escaped() -> None:
    controls = [*map(chr, range(0x20)), "\x7f", *map(chr, range(0x80, 0xA0))]
    assert printable("".join(controls)) == "".join(f"\\x{ord(c):02x}" for c in controls)


def test_escape_sequences_lose_their_effect_and_other_text_stays() -> None:
    assert printable("\x1b[31mRED\x1b]0;title\x07") == r"\x1b[31mRED\x1b]0;title\x07"
    assert printable("line\nforged\rline\ttab") == r"line\x0aforged\x0dline\x09tab"
    assert printable("généraux → 将軍 [0, 1] \\ ok") == "généraux → 将軍 [0, 1] \\ ok"


def test_bidirectional_controls_cannot_reorder_a_name_on_screen() -> None:
    bidi = ["\u061c", "\u200e", "\u200f", *map(chr, range(0x202A, 0x202F)), *map(chr, range(0x2066, 0x206A))]
    assert printable("".join(bidi)) == "".join(f"\\u{ord(c):04x}" for c in bidi)
    assert printable("evil \u202etxt.exe") == r"evil \u202etxt.exe"
    assert printable("שלום 123 abc") == "שלום 123 abc"  # right-to-left text itself is left alone


def test_markup_escapes_brackets_after_controls() -> None:
    assert markup("\x1b[bold]x") == r"\x1b\[bold]x"
