"""Display names and chat lines a stranger might send, for every place that shows one.

The habit (../shared/STYLE.md): anything a person typed is text. Every test that shows
names (the console's notifications and tables, the browser's list and tiles, the
gateway's prompts) runs this list through it. Some of these the server refuses (too
long, blank, reserved); the rest reach leaders' screens and must arrive as plain text.
"""

from __future__ import annotations

MARKUP = [
    "[@click=screen.admit]Anna Schmidt[/]",
    "[@click=screen.lobby]Berta[/]",
    "[@click=app.screenshot()]Carla[/]",
    "[@click=app.quit]Dora[/]",
    "[@click=screen.deny]Emil[/]",
    "[/]",
    "[/bold]",
    "[bold red]Leitung[/]",
    "[b]Frieda",
    "[link=https://example.invalid]Gerd[/link]",
    "[reverse]Hanna[/reverse]",
    "[on red]" + "X" * 20,
    "[[escaped]]",
    "\\[@click=screen.admit]Ida[/]",
    "[$accent]Jan[/]",
    "[@click=screen.admit_all]alle[/]",
    ":warning: Karl :smile:",
    "$variable Lena",
]
HTML = [
    "<b>Max</b>",
    "<img src=x onerror=alert(1)>",
    "<script>alert('Nina')</script>",
    "&lt;Otto&gt;",
    '"><svg onload=alert(1)>',
    "javascript:alert(1)",
    "{{7*7}} Paul",
    "${7*7} Quirin",
    "%s%s%s%n",
    "Rosa\\nSven",
]
BIDI = [
    "\u202eetsiL\u202c Tina",
    "Uwe\u2066Leitung\u2069",
    "\u200fVera\u200e",
    "\u061cWalter",
    "\u2067Xaver",
]
CONTROL = [
    "Yvonne\x1b[31mrot",
    "Zoe\x07\x08\x7f",
    "Anna\r\nLeitung: admit all",
    "Bernd\x00Nul",
    "Clara\u0085Next",
    "\x1b]0;title\x07Dieter",
]
ZERO_WIDTH = [
    "Leitung\u200b",
    "Lei\u200dtung",
    "\ufeffLeitung",
    "Ed\u2060gar",
    "Fritz\u180e",
]
BLANK = [
    "\u3164",
    "\u2800",
    "\u0301",
    "\u0301\u0302\u0303",
    "\u115f\u1160",
    "\uffa0",
    "   ",
]
LONG = [
    "A" * 41,
    "Ü" * 200,
    "Z̷̢̛̤̗̈́a̴̡̝̚l̶̰̊g̵̣̈o̶̤̔" * 3,
    "x" * 10_000,
    "[" * 5000 + "]" * 5000,
]
OTHER = [
    "Leitung",
    "leitung",
    "LEITUNG",
    "Leitung (Konsole)",
    "Gisela 👩‍👩‍👧",
    "محمد",
    "王小明",
    "Ήρα",
]

ALL: list[str] = [*MARKUP, *HTML, *BIDI, *CONTROL, *ZERO_WIDTH, *BLANK, *LONG, *OTHER]
"""Every hostile name; at least 50 of them."""

MARKUP_CLICKS: list[str] = [n for n in MARKUP if "@click" in n]
"""The names that would act when clicked, if rendered as Textual markup."""

assert len(ALL) >= 50
