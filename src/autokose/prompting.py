"""Scene → SD prompt text: the one place a scene's fields become English prompt words.

Writers call `scene_prompt` and `negative_prompt` to fill `scene.prompt` and
`scene.negative_prompt` in story.json; the renderer calls `build_prompt` and `build_negative`,
which use a scene's own prompt exactly as written (so a user's edit is what gets drawn) and
build one only when it is empty (a hand-written story.json, or a prompt cleared to rebuild it
after editing the scene's fields). One builder means a rebuilt prompt reads like the writer's.
Text only: encoding the text for a model is `autokose.prompt_embeds`.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from autokose.story import Angle, Blocking, Character, Scene, Shot, Story, TimeOfDay
from autokose.vocabulary import table

DEFAULT_STYLE: str = Story.model_fields["style"].default
_BEARDED = re.compile(r"\b(beard|moustache|mustache)\b", re.IGNORECASE)


def scene_prompt(scene: Scene, cast: dict[str, Character], style: str = DEFAULT_STYLE,
                 without: Collection[str] = ()) -> str:
    """The English SD prompt of a scene, built only from the bible and the scene's fields.

    Order: style, framing, place and light, then each character (trigger token, appearance,
    pose and expression) left to right, then props nobody holds. An insert shot describes the
    prop and whose hands hold it instead of full figures. The characters in `without` are left
    out (their words are their regions' prompts, `character_prompt`), and so are the props they hold.
    """
    words = table().prompt
    parts = [style, words.shots[scene.shot]]
    if scene.angle != Angle.eye_level:
        parts.append(words.angles[scene.angle])
    parts += [setting_words(scene.setting), time_words(scene.time, scene.setting)]
    held = {scene.direction(cid).holds for cid in scene.characters} - {None}
    if scene.shot == Shot.insert:
        focus = next(iter(held), None) or (scene.props[0] if scene.props else None)
        if focus:
            parts.append(prop_words(focus))
        hands = [c.trigger or c.name for c in cast.values() if scene.direction(c.id).holds == focus]
        if hands:
            parts.append(f"in the hands of {', '.join(hands)}")
        return _join(parts)
    for cid in scene.characters:
        if cid not in without:
            parts.append(_figure_words(scene, cast, cid))
    parts += [prop_words(p) for p in scene.props if p not in held]
    return _join(parts)


def _figure_words(scene: Scene, cast: dict[str, Character], cid: str) -> str:
    """A character's words in a frame: the whole figure, or only its token behind a close-up's first."""
    if scene.shot == Shot.close_up and scene.characters.index(cid) > 0:
        return f"{cast[cid].trigger or cast[cid].name} in the background"
    return character_words(cast[cid], scene.direction(cid))


def negative_prompt(scene: Scene, cast: dict[str, Character]) -> str:
    """Generic defects, plus facial hair when Aldar is in frame and nobody else has any."""
    words = table().prompt
    parts = [words.negative]
    if "aldar" in cast and not any(_BEARDED.search(c.appearance) for cid, c in cast.items() if cid != "aldar"):
        parts.append(words.beardless)
    return _join(parts)


def character_words(character: Character, blocking: Blocking) -> str:
    words = table().prompt
    holds = prop_words(blocking.holds) if blocking.holds else "something"
    pose = words.poses.get(blocking.pose, blocking.pose).format(prop=holds)
    parts = [character.trigger, character.appearance or character.name, pose]
    if character.kind in ("human", "spirit") and blocking.emotion:
        parts.append(words.emotions.get(blocking.emotion, f"{blocking.emotion} expression"))
    return _join(parts)


def setting_words(setting: str) -> str:
    known = table().settings.get(setting)
    return known.prompt if known else setting


def time_words(time: TimeOfDay, setting: str) -> str:
    tw = table().times[time]
    known = table().settings.get(setting)
    return tw.interior if known and known.interior and tw.interior else tw.prompt


def prop_words(prop: str) -> str:
    known = table().props.get(prop)
    return known.prompt if known and known.prompt else prop.replace("_", " ")


def _join(parts: list[str]) -> str:
    return ", ".join(p.strip() for p in parts if p and p.strip())


# -- a frame's prompts, for the renderer ---------------------------------------------------


def _cast(story: Story, triggers: dict[str, str]) -> dict[str, Character]:
    return {c.id: c.model_copy(update={"trigger": triggers.get(c.id) or c.trigger}) for c in story.characters}


def build_prompt(story: Story, scene: Scene, triggers: dict[str, str] | None = None) -> str:
    """The positive prompt of one frame.

    A scene's own prompt is used exactly as written: no trigger token is added or swapped in,
    so what the user wrote is what is drawn (the renderer warns when a LoRA's trigger is
    missing). An empty prompt is built from the bible, with `triggers` (character id → token,
    e.g. a card's) overriding the bible's tokens.
    """
    if scene.prompt.strip():
        return scene.prompt
    triggers = {cid: t for cid, t in (triggers or {}).items() if t}
    return scene_prompt(scene, _cast(story, triggers), story.style)


def shared_prompt(story: Story, scene: Scene, triggers: dict[str, str] | None = None,
                  regional: Collection[str] = ()) -> str:
    """A frame's shared prompt when the characters in `regional` have regions of their own.

    The prompt without those characters' words (style, framing, setting, light, the other
    characters, loose props): each region carries its character's words (`character_prompt`),
    so one character's trigger and appearance do not bleed onto another. A written scene prompt
    is used as written (`build_prompt`); its regions then get no words of their own.
    """
    if _user_written(story, scene):
        return scene.prompt
    triggers = {cid: t for cid, t in (triggers or {}).items() if t}
    return scene_prompt(scene, _cast(story, triggers), story.style, without=set(regional))


def _user_written(story: Story, scene: Scene) -> bool:
    """Whether the scene's prompt says something of its own. The writers fill every scene's prompt
    with `scene_prompt` of the story's cast, so a prompt equal to that one is the bible's words,
    which regions may split; anything else (a user's edit) is kept whole."""
    return bool(scene.prompt.strip()) and scene.prompt != scene_prompt(scene, _cast(story, {}), story.style)


def character_prompt(story: Story, scene: Scene, cid: str, triggers: dict[str, str] | None = None) -> str:
    """A character's own words in a frame, for its region: trigger, appearance, pose, expression.

    Empty when the scene's prompt is written (it is used as written, `build_prompt`), for an
    insert shot (its prompt names the hands, not figures) and for a character not in the scene.
    """
    if _user_written(story, scene) or scene.shot == Shot.insert or cid not in scene.characters:
        return ""
    triggers = {k: t for k, t in (triggers or {}).items() if t}
    return _figure_words(scene, _cast(story, triggers), cid)


def build_negative(story: Story, scene: Scene, extra: str = "") -> str:
    """The scene's negative prompt (the writer's when empty) plus `extra`, without repeated terms."""
    base = scene.negative_prompt.strip() or negative_prompt(scene, _cast(story, {}))
    terms: list[str] = []
    for term in (t.strip() for t in f"{base},{extra}".split(",")):
        if term and term.lower() not in (t.lower() for t in terms):
            terms.append(term)
    return ", ".join(terms)


# -- a character sheet's prompts (autokose.render.sheet) ------------------------------------

# The turnaround's camera words, by view turn: what tells the model which side of the figure to draw.
SHEET_TURNS = {
    "front": "front view, facing the viewer",
    "three_quarter_left": "three-quarter view from the left",
    "three_quarter_right": "three-quarter view from the right",
    "profile": "side profile view",
    "back": "back view, seen from behind",
}
SHEET_STYLE = "character sheet, single character, plain light background"


def sheet_prompt(character: Character, turn: str, emotion: str = "neutral", close_up: bool = False,
                 style: str = DEFAULT_STYLE) -> str:
    """The prompt of one view of a character sheet: who (trigger, appearance), from which side, with
    which face. Full-body views stand (the pose the OpenPose control draws); expression views are
    face close-ups, so the expression words carry the view."""
    words = table().prompt
    framing = "face close-up, head and shoulders" if close_up else "full body, head to toe"
    parts = [style, SHEET_STYLE, SHEET_TURNS[turn], framing, character.trigger, character.appearance or character.name]
    if not close_up:
        parts.append(words.poses["stand"])
    if character.kind in ("human", "spirit") and emotion:
        parts.append(words.emotions.get(emotion, f"{emotion} expression"))
    return _join(parts)


def sheet_negative(character: Character, extra: str = "") -> str:
    """A sheet view's negative prompt: the writer's generic one for this character alone, plus `extra`."""
    base = negative_prompt(Scene(index=1, characters=[character.id]), {character.id: character})
    terms: list[str] = []
    for term in (t.strip() for t in f"{base},{extra},duplicate figures, several people".split(",")):
        if term and term.lower() not in (t.lower() for t in terms):
            terms.append(term)
    return ", ".join(terms)
