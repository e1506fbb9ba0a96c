"""What every writer shares: request checks, the draft a writer fills in, and the one place
that turns a draft into a Story.

A writer (offline templates or an LLM) only decides the story: beats, who is where doing
what, captions. `assemble_story` adds everything derived from the bible and the seed (SD
prompts from `autokose.prompting`, negative prompts, per-scene seeds, the cast list), so both
writers draw alike.
"""

from __future__ import annotations

import hashlib
import logging
import random
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from autokose.bible import Bible
from autokose.errors import InputError
from autokose.prompting import DEFAULT_STYLE, negative_prompt, scene_prompt
from autokose.story import (
    MAX_LOGLINE_CHARS,
    MAX_SCENES,
    Angle,
    Beat,
    Blocking,
    Language,
    Scene,
    Shot,
    Story,
    TimeOfDay,
    format_validation_error,
)
from autokose.vocabulary import Matcher, canonical_place, matchers, table
from autokose.writers.lexicon import lexicon
from autokose.writers.premise import character_matcher

log = logging.getLogger("autokose.writers")


def check_request(logline: str, scenes: int, seed: int) -> str:
    """The stripped logline, or an InputError naming what is wrong with the request."""
    if not isinstance(logline, str) or not logline.strip():
        raise InputError("logline is empty")
    if len(logline) > MAX_LOGLINE_CHARS:
        raise InputError(f"logline is {len(logline)} characters; the limit is {MAX_LOGLINE_CHARS}")
    if isinstance(scenes, bool) or not isinstance(scenes, int) or not 1 <= scenes <= MAX_SCENES:
        raise InputError(f"scenes must be between 1 and {MAX_SCENES} (got {scenes!r})")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise InputError(f"seed must be an integer in [0, 2**32) (got {seed!r})")
    return logline.strip()


def scene_seed(seed: int, index: int) -> int:
    """A frame's seed: stable for (story seed, scene index), spread over [0, 2**32)."""
    digest = hashlib.sha256(f"autokose:{seed}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big")


# Short stories keep the beats that carry a tale; longer ones add encounters and complications.
BASE_BEATS: dict[int, list[Beat]] = {
    1: [Beat.trick],
    2: [Beat.setup, Beat.trick],
    3: [Beat.setup, Beat.trick, Beat.resolution],
    4: [Beat.setup, Beat.encounter, Beat.trick, Beat.resolution],
    5: [Beat.setup, Beat.encounter, Beat.trick, Beat.reveal, Beat.resolution],
    6: [Beat.setup, Beat.encounter, Beat.trick, Beat.complication, Beat.reveal, Beat.resolution],
}


def plan_beats(scenes: int, rng: random.Random, room: dict[Beat, int] | None = None) -> list[Beat]:
    """The beat of every scene. Beyond six scenes the extra ones are encounters before the
    trick and complications after it; the split varies with the seed within `room` (how many
    distinct moves each of the two beats has)."""
    if scenes <= 6:
        return list(BASE_BEATS[scenes])
    extra = scenes - 6
    room = room or {}
    lo = max(0, extra - (room.get(Beat.complication, extra + 1) - 1))
    hi = min(extra, room.get(Beat.encounter, extra + 1) - 1)
    encounters = extra // 2 + rng.choice((-1, 0, 0, 1))
    encounters = min(max(encounters, lo), hi) if lo <= hi else extra // 2
    return ([Beat.setup] + [Beat.encounter] * (1 + encounters) + [Beat.trick]
            + [Beat.complication] * (1 + extra - encounters) + [Beat.reveal, Beat.resolution])


# -- the draft a writer fills in ----------------------------------------------------------


class CharacterDraft(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str = Field(description="Bible id (a name or alias is mapped to the id).")
    pose: str = "stand"
    emotion: str = "neutral"
    holds: str | None = None
    place: str | None = Field(None, description="behind (back row), front, left or right; None: the front row.")


class SceneDraft(BaseModel):
    model_config = ConfigDict(extra="ignore")

    beat: Beat
    setting: str
    time: TimeOfDay = TimeOfDay.day
    characters: list[CharacterDraft] = Field(default_factory=list, description="Left to right.")
    props: list[str] = Field(default_factory=list)
    shot: Shot = Shot.medium
    angle: Angle = Angle.eye_level
    caption: Annotated[str, Field(min_length=1)]
    dialogue: str | None = None
    action: str = Field("", description="What happens, in English.")
    duration: float | None = None


class StoryDraft(BaseModel):
    model_config = ConfigDict(extra="ignore")

    title: Annotated[str, Field(min_length=1)]
    scenes: Annotated[list[SceneDraft], Field(min_length=1, max_length=MAX_SCENES)]


# -- draft → Story ---------------------------------------------------------------------


def assemble_story(draft: StoryDraft, *, logline: str, language: Language, bible: Bible, seed: int,
                   style: str = DEFAULT_STYLE) -> Story:
    """Resolve names to bible ids, canonicalise words, add prompts and seeds; validate.

    Characters the bible does not know are dropped from their scene with a logged warning
    (a model may invent a "shepherd"); the story is still drawn with everyone else.
    """
    who = character_matcher(bible)
    scenes = []
    for n, sd in enumerate(draft.scenes):
        ids, blocking = [], {}
        props = [canonical_prop(p) for p in sd.props]
        for cd in sd.characters:
            found = resolve_characters(cd.id, bible, who)
            if not found:
                log.warning("scene %d: dropped unknown character %r (not in the bible)", n + 1, cd.id)
            holds = canonical_prop(cd.holds) if cd.holds else None
            if found and holds and holds not in props:
                props.append(holds)
            for cid in (c for c in found if c not in ids):
                ids.append(cid)
                blocking[cid] = Blocking(pose=canonical_pose(cd.pose), emotion=canonical_emotion(cd.emotion),
                                         holds=holds, place=canonical_place(cd.place))
        scene = Scene(
            index=n + 1, beat=sd.beat, setting=canonical_setting(sd.setting), time=sd.time, action=sd.action,
            characters=ids, blocking=blocking, props=list(dict.fromkeys(props)), shot=sd.shot, angle=sd.angle,
            caption=sd.caption.strip(), dialogue=(sd.dialogue or "").strip() or None, seed=scene_seed(seed, n + 1),
            **({"duration": sd.duration} if sd.duration else {}),
        )
        cast = {cid: bible[cid] for cid in ids}
        scene.prompt = scene_prompt(scene, cast, style)
        scene.negative_prompt = negative_prompt(scene, cast)
        scenes.append(scene)
    appearing = list(dict.fromkeys(cid for s in scenes for cid in s.characters))
    try:
        return Story(title=draft.title.strip(), logline=logline, language=language, style=style,
                     characters=[bible[cid] for cid in appearing], scenes=scenes,
                     protagonist=bible.protagonist if bible.protagonist in appearing else None)
    except ValidationError as e:
        raise InputError(f"story: {format_validation_error(e)}") from None


def resolve_characters(ref: str, bible: Bible, matcher: Matcher | None = None) -> list[str]:
    """Bible ids for an id, name, alias or group word ("Aldar Köse", "Бай", "servants");
    empty if the bible knows nobody by that name."""
    ref = ref.strip()
    for cid in (ref, ref.lower()):
        if cid in bible:
            return [cid]
    key = (matcher or character_matcher(bible)).first(ref)
    if key and key.startswith("group:"):
        return list(lexicon().groups[key.removeprefix("group:")].members)
    return [key] if key else []


def canonical_pose(text: str) -> str:
    word = text.strip().lower()
    return word if word in table().poses else (matchers()["poses"].first(word) or "stand")


def canonical_emotion(text: str) -> str:
    word = text.strip().lower() or "neutral"
    # never a word the word table lacks: the pipeline refuses a story with one (issue 10)
    return word if word in table().emotions else (matchers()["emotions"].first(word) or "neutral")


def canonical_prop(text: str) -> str:
    """A vocabulary prop id for a prop name in any language; other things keep their name."""
    word = text.strip().lower()
    if word in table().story_props:
        return word
    return matchers()["props"].first(word) or word


def canonical_setting(text: str) -> str:
    word = text.strip().lower()
    if word in table().settings:
        return word
    return matchers()["settings"].first(word) or word
