"""The Story: the data every stage reads and extends.

`story.json` in a board folder is this model serialised; keys that later tools rely on
(`logline`, `language`, `characters[].id`, `scenes[].index`, `scenes[].caption`,
`scenes[].characters`, `scenes[].shot`, `scenes[].prompt`, `scenes[].seed`) are stable. Outside
tools (importers, benchmarks) keep their own data in `extra` on the story and on each scene; every
other key is checked, so a misspelt one is an error rather than a setting silently dropped.
"""

from __future__ import annotations

import json
import re
import unicodedata
from enum import Enum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator, model_validator

from autokose.errors import InputError, format_validation_error
from autokose.fsio import read_text
from autokose.poses import POSE_ALIASES, POSES

SCHEMA_VERSION = 1
# A feature-length board (about 300 shots) still fits; writers default to 6–10 scenes, and frame
# files are numbered `{index:02d}` (board.frame_key), so scenes 100+ get three digits.
MAX_SCENES = 300
MAX_LOGLINE_CHARS = 1000
# A panel's caption and action are a few sentences; the caps keep a pasted novel from stalling
# the exports' text fitting. Prompts may be long (encoded in 75-token windows), not unbounded.
MAX_CAPTION_CHARS = 2000
MAX_PROMPT_CHARS = 4000
COLOUR = re.compile(r"^#(?:[0-9a-fA-F]{3}){1,2}$")  # what the previz renderer reads (svg.rgb)
SURROGATE = re.compile(r"[\ud800-\udfff]")
# `extra` on the story and on each scene: the one place an outside tool keeps its own data (where a board
# came from, a benchmark's concept id). Free JSON, kept as written; no stage reads it, so editing it never
# restages or redraws a frame (staging.UNSTAGED, quality.render_key).
EXTRA_DESCRIPTION = ("Free JSON object for other tools' own data (e.g. {\"source\": {\"file\": ..., \"line\": 3}}); "
                     "kept in story.json as written, never read by AutoKöse.")


class Language(str, Enum):
    ru = "ru"
    kk = "kk"
    en = "en"


class Shot(str, Enum):
    """Shot size: how much of the frame a figure fills."""

    establishing = "establishing"  # extreme wide: setting first, figures small
    wide = "wide"
    medium = "medium"
    close_up = "close_up"
    over_the_shoulder = "over_the_shoulder"
    insert = "insert"  # the key prop fills the frame


class Angle(str, Enum):
    eye_level = "eye_level"
    low = "low"
    high = "high"


class TimeOfDay(str, Enum):
    dawn = "dawn"
    day = "day"
    dusk = "dusk"
    night = "night"


class Beat(str, Enum):
    """The beat structure of an Aldar Köse tale."""

    setup = "setup"
    encounter = "encounter"
    trick = "trick"
    complication = "complication"
    reveal = "reveal"
    resolution = "resolution"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=False, validate_assignment=True)


class Character(_Model):
    """One member of the cast, as the character bible describes them."""

    id: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=40)]
    name: str
    role: str = ""
    appearance: str = Field("", description="Visual description used in prompts.")
    trigger: str = Field("", description="Rare token a LoRA was trained on (e.g. 'aldarkose').")
    palette: dict[str, str] = Field(
        default_factory=dict, description="Named colours (#rrggbb) for the previz puppet."
    )
    build: str = Field("average", description="Puppet body: slim, average, stout, small, animal.")
    kind: str = Field("human", description="human or spirit (a puppet); any other kind is an animal: donkey, horse, "
                      "camel, wolf, dog, sheep, goat, eagle are drawn, others get a neutral silhouette.")
    references: list[str] = Field(default_factory=list, description="Reference image paths.")
    lora: str | None = Field(None, description="LoRA file for this character (path[:weight]).")
    card: str | None = Field(None, description="Character card JSON written by training.")
    aliases: list[str] = Field(
        default_factory=list, description="Words that name this character in a logline (any language)."
    )
    names: dict[str, str] = Field(default_factory=dict, description="Display name per language code.")

    @field_validator("palette")
    @classmethod
    def _colours(cls, palette: dict[str, str]) -> dict[str, str]:
        for name, colour in palette.items():
            if not COLOUR.match(colour):
                raise ValueError(f"colour '{name}' is {colour!r}; expected #rrggbb (or #rgb)")
        return palette

    def display_name(self, language: Language | str) -> str:
        code = language.value if isinstance(language, Language) else language
        return self.names.get(code, self.name)


# Where a character stands in the frame (`Blocking.place`); staging reads it, never the action prose.
Position = Literal["behind", "front", "left", "right"]


def pose_key(word: str) -> str:
    """A pose word as the pose library spells its keys (poses.resolve_pose reads it the same way)."""
    return (word or "").strip().lower().replace(" ", "_")


class Blocking(_Model):
    """What one character in a scene does: pose, emotion, what they hold."""

    pose: str = Field("stand", description="A pose of the pose library or one of its aliases (autokose vocab poses).")
    emotion: str = Field("neutral", description="An emotion of the word table (autokose vocab emotions).")
    holds: str | None = Field(None, description="Prop held in the hands, if any.")
    place: Position | None = Field(
        None, description="behind: in a back row, behind the key character's counterpart; front: in the front "
                          "row (the default); left, right: at that end of the front row."
    )

    @field_validator("pose")
    @classmethod
    def _known_pose(cls, v: str) -> str:
        """A pose the pose library draws (or one of its aliases). An unknown word used to be drawn
        standing without a word; now the author hears which words exist (`autokose vocab poses`)."""
        if pose_key(v) not in POSES and pose_key(v) not in POSE_ALIASES:
            raise ValueError(f"unknown pose {v!r} (poses: {', '.join(POSES)}; aliases: autokose vocab poses)")
        return v


# What a blank `negative_prompt` and a missing `seed` mean, for `autokose schema` (outside tools leave them out).
NEGATIVE_DESCRIPTION = (
    "Terms the frame avoids. Blank (the default) means the built-in one, written for the Aldar Köse cast: generic "
    "defects (blurry, bad anatomy, extra fingers, text, watermark, ...) and 'modern clothing', plus 'beard, "
    "moustache, stubble' when aldar is in frame. Any text replaces it; the diffusion option `negative` is added to "
    "either.")
SEED_DESCRIPTION = (
    "This frame's seed. Default 0 for every scene: give each frame its own (the writers derive distinct ones from "
    "the story's seed); frames sharing a seed look alike and inflate consistency scores.")


class Scene(_Model):
    index: Annotated[int, Field(ge=1, le=MAX_SCENES)]
    beat: Beat = Beat.setup
    setting: str = Field("steppe", description="Where the scene is: a word of `autokose vocab settings` or any words. "
                         "Default steppe. Drives staging (the previz backdrop; a scene with the setting, shot and "
                         "cast of the one before is pushed in) and the setting words of a built prompt.")
    time: TimeOfDay = Field(TimeOfDay.day, description="Time of day, default day: the light of a built prompt and of "
                                                       "the previz backdrop.")
    action: str = Field("", max_length=MAX_CAPTION_CHARS)
    characters: list[str] = Field(default_factory=list, description="Ids of the characters present, left to right.")
    blocking: dict[str, Blocking] = Field(default_factory=dict, description="Pose and emotion per character id.")
    props: list[str] = Field(default_factory=list)
    shot: Shot = Field(Shot.medium, description="Shot size, default medium. Drives staging: how large the figures "
                                                "are drawn, so the pose skeletons ControlNet follows; set it to match "
                                                "a written prompt's own framing.")
    angle: Angle = Angle.eye_level
    caption: str = Field("", max_length=MAX_CAPTION_CHARS)
    dialogue: str | None = Field(None, max_length=MAX_CAPTION_CHARS)
    prompt: str = Field("", max_length=MAX_PROMPT_CHARS,
                        description="The frame's prompt, used exactly as written. Blank: built from the style, the "
                                    "setting, time and shot and each character's trigger, appearance and blocking.")
    negative_prompt: str = Field("", max_length=MAX_PROMPT_CHARS, description=NEGATIVE_DESCRIPTION)
    seed: Annotated[int, Field(ge=0, lt=2**32, description=SEED_DESCRIPTION)] = 0
    duration: Annotated[float, Field(gt=0, le=60)] = 3.0
    notes: str = Field("", max_length=MAX_CAPTION_CHARS,
                       description="The board artist's notes for the panel (camera, sound, timing); shown in "
                                   "board.html, the PDF and shots.csv, never drawn.")
    sound: str | None = Field(None, max_length=500,
                              description="Audio file for this panel in the animatic, relative to the board folder "
                                          "(e.g. sound/03.wav); it plays from the panel's first frame and is cut at "
                                          "its last.")
    extra: dict[str, JsonValue] = Field(default_factory=dict, description=EXTRA_DESCRIPTION)

    @field_validator("sound")
    @classmethod
    def _relative_sound(cls, v: str | None) -> str | None:
        """A path inside the board: boards are mailed around, and an export must not read files from elsewhere."""
        if v is None or not v.strip():
            return None
        parts = v.replace("\\", "/").split("/")
        if v.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", v) or ".." in parts:
            raise ValueError(f"{v!r} must be a path inside the board folder (relative, no '..')")
        return v

    def direction(self, cid: str) -> Blocking:
        return self.blocking.get(cid) or Blocking()


class Story(_Model):
    schema_version: int = SCHEMA_VERSION
    title: str
    logline: Annotated[str, Field(min_length=1, max_length=MAX_LOGLINE_CHARS)]
    language: Language = Language.en
    style: str = Field("storyboard sketch, clean lines, muted colours", description="Look shared by all frames.")
    characters: list[Character]
    scenes: Annotated[list[Scene], Field(min_length=1, max_length=MAX_SCENES)]
    protagonist: str | None = Field(
        None, description="Id of the lead, one of `characters` (the writers set it from the characters file's "
                          "`protagonist:`). Unset: aldar when he is in the story, else whoever is in the most scenes; "
                          "scoring reports on the lead first.")
    extra: dict[str, JsonValue] = Field(default_factory=dict, description=EXTRA_DESCRIPTION)

    @field_validator("schema_version")
    @classmethod
    def _supported(cls, v: int) -> int:
        if v != SCHEMA_VERSION:
            raise ValueError(f"version {v} is not supported (this AutoKöse reads schema_version {SCHEMA_VERSION})")
        return v

    @field_validator("logline")
    @classmethod
    def _logline_not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("logline is empty")
        return v.strip()

    @model_validator(mode="after")
    def _consistent(self) -> Story:
        ids = {c.id for c in self.characters}
        if len(ids) != len(self.characters):
            raise ValueError("characters: duplicate id")
        if self.protagonist is not None and self.protagonist not in ids:
            raise ValueError(f"protagonist: unknown character '{self.protagonist}'")
        for n, scene in enumerate(self.scenes):
            if scene.index != n + 1:
                raise ValueError(f"scenes[{n}].index is {scene.index}, expected {n + 1}")
            for cid in scene.characters:
                if cid not in ids:
                    raise ValueError(f"scenes[{n}].characters: unknown character '{cid}'")
            for cid in scene.blocking:
                if cid not in scene.characters:
                    raise ValueError(f"scenes[{n}].blocking: '{cid}' is not in the scene's characters")
        return self

    def character(self, cid: str) -> Character:
        for c in self.characters:
            if c.id == cid:
                return c
        raise KeyError(cid)

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), ensure_ascii=False, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str = "story.json") -> Story:
        try:
            data = json.loads(text)
            check_text(data)
            return cls.model_validate(data)
        except json.JSONDecodeError as e:
            raise InputError(f"{source}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
        except RecursionError:
            raise InputError(f"{source}: nested too deeply to be a story") from None
        except ValueError as e:  # ValidationError and check_text's
            msg = format_validation_error(e) if isinstance(e, ValidationError) else str(e)
            raise InputError(f"{source}: {msg}") from None

    @classmethod
    def load(cls, path: Path) -> Story:
        return cls.from_json(read_text(path, "story file"), source=str(path))


def check_logline(logline: str) -> None:
    """Raise InputError (one line) for a logline no writer can use: undecodable bytes, binary
    data, empty, too long.

    `config.resolve` calls it whenever a logline is given, so the CLI, a web form and a
    ComfyUI node refuse the same loglines with the same words.
    """
    if SURROGATE.search(logline):  # bytes argv could not decode (surrogateescape)
        raise InputError("logline is not valid UTF-8")
    if any(unicodedata.category(c) == "Cc" and c not in "\t\n\r" for c in logline):
        raise InputError("logline contains control characters (NUL or other binary data)")
    if not logline.strip():
        raise InputError("logline is empty")
    if len(logline) > MAX_LOGLINE_CHARS:
        raise InputError(f"logline is {len(logline)} characters; the limit is {MAX_LOGLINE_CHARS}")


def check_text(data, loc: str = "", seen: set[int] | None = None) -> None:
    """Raise ValueError naming the first string of parsed JSON/YAML `data` that is not valid Unicode.

    JSON's `\\ud800` escape and YAML's `"\\uD800"` give lone surrogates, which cannot be
    written back as UTF-8: refused here, not with a traceback when the board is saved.
    `seen` visits a container shared through YAML aliases once (no "billion laughs").
    """
    seen = set() if seen is None else seen
    if isinstance(data, str):
        if SURROGATE.search(data):
            raise ValueError(f"{loc or 'text'}: lone surrogate (an unpaired \\ud800-\\udfff escape); not valid Unicode")
        return
    if not isinstance(data, (dict, list)) or id(data) in seen:
        return
    seen.add(id(data))
    items = data.items() if isinstance(data, dict) else ((f"[{n}]", v) for n, v in enumerate(data))
    for key, value in items:
        check_text(key, loc, seen)
        name = key if isinstance(data, list) else f".{key}" if loc else str(key)
        check_text(value, f"{loc}{name}", seen)


def story_schema() -> dict:
    return Story.model_json_schema()
