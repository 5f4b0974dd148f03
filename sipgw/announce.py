"""The spoken prompts a caller hears, in German and English.

Built-in prompts live in `sipgw/prompts/{de,en}/NAME.wav` (made by
`sipgw/prompts/generate.sh` with espeak-ng and sox). An operator can record better
ones with the same names in `[sip] prompts_dir`; a missing override falls back to the
built-in file. All prompts are loaded and checked at start, so a broken file stops the
gateway at once instead of leaving a caller in silence.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sipgw.audio import RATE, Pcm, load_wav
from sipgw.config import LANGUAGES
from sipgw.errors import PromptError

log = logging.getLogger(__name__)

BUILTIN_DIR = Path(__file__).resolve().parent / "prompts"

NAMES = (
    "welcome",
    "pin_wrong",
    "pin_failed",
    "locked",
    "lobby",
    "admitted",
    "denied",
    "timeout",
    "ended",
    "removed",
    "muted",
    "unmuted",
    "hand_up",
    "hand_down",
    "mute_request",
    "unavailable",
    "choose_language",
)
"""Every prompt the gateway may play; each must exist in every language."""


@dataclass(frozen=True)
class Prompt:
    name: str
    lang: str
    pcm: Pcm

    @property
    def seconds(self) -> float:
        return len(self.pcm) / RATE


class Prompts:
    """All prompts in memory, by language and name."""

    def __init__(self, override_dir: Path | None = None, builtin_dir: Path = BUILTIN_DIR) -> None:
        self._prompts: dict[tuple[str, str], Prompt] = {}
        overridden = 0
        for lang in LANGUAGES:
            for name in NAMES:
                path = builtin_dir / lang / f"{name}.wav"
                if override_dir is not None:
                    candidate = override_dir / lang / f"{name}.wav"
                    if candidate.is_file():
                        path = candidate
                        overridden += 1
                if not path.is_file():
                    raise PromptError(f"prompt {lang}/{name}.wav is missing")
                self._prompts[(lang, name)] = Prompt(name, lang, load_wav(path))
        if override_dir is not None:
            log.info("%d prompts taken from prompts_dir", overridden)

    def get(self, lang: str, name: str) -> Prompt:
        """The prompt `name` in `lang` (German when the language is unknown)."""
        prompt = self._prompts.get((lang, name)) or self._prompts.get(("de", name))
        if prompt is None:
            raise PromptError(f"no prompt named {name}")
        return prompt

    def both(self, name: str) -> Prompt:
        """`name` in German, then English, with a short pause between."""
        de, en = self.get("de", name), self.get("en", name)
        pause = np.zeros(RATE // 4, dtype=np.int16)
        return Prompt(name, "de+en", np.concatenate([de.pcm, pause, en.pcm]))
