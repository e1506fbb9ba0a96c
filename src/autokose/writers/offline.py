"""The offline writer: a logline becomes a whole Aldar Köse tale, with no model and no network.

The logline is read as the tale's key moment (the trick). Around it the writer builds the
classic arc: Aldar on the road (setup), meeting the greedy one (encounter), the trick,
doubts and haggling (complication), the lure exposed (reveal), Aldar riding off
(resolution). What happens in each beat is picked from the scene moves of
`data/writer/lexicon.yaml` and written from the language's phrase file, with the logline's
own cast, props, place and time. A seed picks among the choices: the same logline and seed
always give the same story. A characters file that names another `protagonist:` casts that
character in Aldar's part (role A): the tale is the same, told about them.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from types import SimpleNamespace

from autokose.bible import Bible
from autokose.errors import InputError
from autokose.language import Noun, inflect, phrases, sentence_case
from autokose.prompting import DEFAULT_STYLE
from autokose.story import Angle, Beat, Language, Shot, Story, TimeOfDay
from autokose.vocabulary import table
from autokose.writers.common import (
    CharacterDraft,
    SceneDraft,
    StoryDraft,
    assemble_story,
    check_request,
    plan_beats,
)
from autokose.writers.fidelity import cast_for_logline, logline_elements
from autokose.writers.lexicon import Mark, Move, lexicon
from autokose.writers.premise import Premise, read_premise

TIMES = [TimeOfDay.dawn, TimeOfDay.day, TimeOfDay.dusk, TimeOfDay.night]
# How each role stands in the key moment unless the logline says otherwise.
TRICK_BLOCKING: dict[str, tuple[str, str]] = {
    "A": ("hold", "sly"), "M": ("bow", "greedy"), "S": ("stand", "suspicious"),
    "W": ("stand", "curious"), "D": ("stand", "neutral"), "H": ("stand", "neutral"),
}
MAX_REACTIONS = 3


@dataclass
class Tale:
    """Who plays which part, what is sold and paid, and where things happen."""

    premise: Premise
    roles: dict[str, list[str]]  # role letter → bible ids
    extras: list[str]  # other characters the logline names
    lure: str
    pay: str  # a prop id, or "horse"
    places: dict[str, str]  # approach/outside/inside/away/trick → setting id
    anchor: TimeOfDay  # the time of the key moment

    def has(self, role: str) -> bool:
        return role in self.roles


class OfflineWriter:
    """Deterministic template writer (the default)."""

    name = "offline"

    def __init__(self, style: str | None = None):
        self.style = style or DEFAULT_STYLE

    def write(self, logline: str, *, scenes: int, seed: int, bible: Bible) -> Story:
        logline = check_request(logline, scenes, seed)
        if bible.protagonist not in bible:
            raise InputError(f"the character bible has no '{bible.protagonist}' (the protagonist is in every story)")
        bible = cast_for_logline(logline_elements(logline, bible), bible)
        premise = read_premise(logline, bible)
        rng = random.Random(f"autokose-offline:{seed}:{logline}")
        tale = cast_tale(premise, bible, rng)
        beats = plan_beats(scenes, rng, {b: len(available_moves(b, tale)) for b in (Beat.encounter, Beat.complication)})
        moves = choose_moves(beats, tale, rng)
        local, english = voice(tale, bible, premise.language), voice(tale, bible, Language.en)
        drafts = direct_scenes(beats, moves, tale, local, english, rng)
        title = sentence_case(local.fill(rng.choice(titles(tale, local))))
        draft = StoryDraft(title=title, scenes=drafts)
        return assemble_story(draft, logline=logline, language=premise.language, bible=bible, seed=seed,
                              style=self.style)


# -- casting ---------------------------------------------------------------------------


def cast_tale(premise: Premise, bible: Bible, rng: random.Random) -> Tale:
    lex, vocab = lexicon(), table()
    lead = bible.protagonist
    named = [cid for cid in premise.characters if cid != lead]
    mark_id = pick_mark(named, bible)
    mark = lex.marks.get(mark_id) or Mark(home="aul", yard="aul")
    # Someone the tale does not know keeps a household at home, not at the bazaar.
    household = mark.household or (mark_id not in lex.marks and bible[mark_id].kind == "human"
                                   and premise.setting != "bazaar")
    servants = lex.groups["servants"].members
    roles: dict[str, list[str]] = {"A": [lead], "M": [mark_id]}
    if all(s in bible for s in servants) and (household or any(s in named for s in servants)):
        roles["S"] = list(servants)
    if "baibishe" in bible and (mark.household or "baibishe" in named):
        roles["W"] = ["baibishe"]
    if "donkey" in bible:
        roles["D"] = ["donkey"]

    props = vocab.story_props
    lures = [p for p in premise.props if props[p].role == "lure"]
    pays = [p for p in premise.props if props[p].role == "payment"]
    sold = premise.sold if premise.sold in props and props[premise.sold].role in ("lure", "payment") else None
    if sold:  # the logline says what Aldar sells: that is the lure, whatever it usually is
        lure = sold
        pays = [p for p in pays if p != sold]
    elif lures:
        lure = lures[0]
    elif pays and props[pays[0]].pairs_with:
        lure = props[pays[0]].pairs_with
    else:
        lure = rng.choice([k for k, p in props.items() if p.role == "lure"])
    if pays:
        pay = pays[0]
    elif "horse" in named:
        pay = "horse"
    elif props[lure].role == "lure" and props[lure].pairs_with:
        pay = props[lure].pairs_with
    else:
        pay = "purse" if lure != "purse" else ("horse" if "horse" in bible else "fur_coat")
    if "horse" in bible and ("horse" in named or pay == "horse"):
        roles["H"] = ["horse"]
    # The lead plays A alone: a donkey or a servant cast as the lead is not also in a part of their own.
    roles = {role: ids for role, ids in roles.items() if role == "A" or lead not in ids}

    taken = {cid for ids in roles.values() for cid in ids}
    trick = premise.setting or mark.home
    settings = vocab.settings
    inside = trick if settings[trick].interior else (mark.home if settings[mark.home].interior else trick)
    outside = mark.yard if (settings[trick].interior or trick == mark.home) else trick
    places = {
        "trick": trick, "inside": inside, "outside": outside,
        "approach": "road" if trick != "road" else "steppe",
        "away": "steppe" if trick != "steppe" else "road",
    }
    # Other places the logline names: the road there, then the yard (or the room) of the encounters.
    for other in [p for p in premise.settings if p not in (trick, inside, outside)][:2]:
        if settings[other].interior:
            slot = "inside"
        else:
            slot = "approach" if places["approach"] not in premise.settings else "outside"
        places[slot] = other
    anchor = premise.time or mark.time or TimeOfDay.day
    return Tale(premise, roles, [cid for cid in named if cid not in taken], lure, pay, places, anchor)


def pick_mark(named: list[str], bible: Bible) -> str:
    """The one the lead tricks: a named classic dupe, else another named person, else the Bai
    (`named` leaves the lead out)."""
    for mark in lexicon().marks:
        if mark in named:
            return mark
    bystanders = {"servant1", "servant2", "baibishe"}
    for cid in named:
        if bible[cid].kind in ("human", "spirit") and cid not in bystanders:
            return cid
    if "bai" in bible and bible.protagonist != "bai":
        return "bai"
    others = [c.id for c in bible if c.id != bible.protagonist and c.kind in ("human", "spirit")]
    if not others:
        raise InputError(f"the character bible has nobody for {bible[bible.protagonist].name} to trick")
    return others[0]


# -- choosing what happens ---------------------------------------------------------------


def available_moves(beat: Beat, tale: Tale) -> list[Move]:
    return [m for m in lexicon().moves.get(beat, [])
            if all(tale.has(r) for r in m.cast) and tale.places[m.place] not in m.not_at]


def choose_moves(beats: list[Beat], tale: Tale, rng: random.Random) -> list[Move | None]:
    """One move per scene (None for the trick, which is written from the logline).

    Core moves come first in short stories; a beat's moves keep the lexicon's order so events
    follow one another. One scene after the trick shows the lure in an insert shot.
    """
    chosen: dict[Beat, list[Move]] = {}
    for beat in dict.fromkeys(beats):
        if beat == Beat.trick:
            continue
        pool = available_moves(beat, tale)
        if not pool:
            raise InputError(f"no {beat.value} scene fits this cast (the bible lacks someone it needs)")
        count = beats.count(beat)
        if beat == Beat.reveal and not any(m.insert for m in chosen.get(Beat.complication, [])):
            pool = [m for m in pool if m.insert] or pool
        chosen[beat] = _pick_in_order(pool, count, rng)
    _ensure_payoff(chosen, tale)
    return [None if b == Beat.trick else chosen[b].pop(0) for b in beats]


PAYOFF_MOVES = ("deal", "rides_off")  # the dupe hands over the payment; Aldar rides off with it


def _ensure_payoff(chosen: dict[Beat, list[Move]], tale: Tale) -> None:
    """Every trick pays off: the deal among the complications, else the ride away with the pay."""
    if any(m.id in PAYOFF_MOVES for moves in chosen.values() for m in moves):
        return
    for beat, move_id in ((Beat.complication, "deal"), (Beat.resolution, "rides_off")):
        picked = chosen.get(beat)
        move = next((m for m in available_moves(beat, tale) if m.id == move_id), None)
        if picked and move:
            picked[-1] = move
            order = [m.id for m in lexicon().moves[beat]]
            picked.sort(key=lambda m: order.index(m.id))
            return


def _pick_in_order(pool: list[Move], count: int, rng: random.Random) -> list[Move]:
    if count == 1 and len(pool) > 1:
        cores = [m for m in pool if m.core] or pool
        return [rng.choice(cores)]
    picked: list[Move] = []
    while len(picked) < count:  # more scenes than moves: go round again
        cores = [m for m in pool if m.core]
        rest = [m for m in pool if not m.core]
        rng.shuffle(cores)
        rng.shuffle(rest)
        need = count - len(picked)
        take = (cores + rest)[:need]
        picked += sorted(take, key=pool.index)
    return picked


# -- directing scenes ----------------------------------------------------------------------


@dataclass(frozen=True)
class Voice:
    """The tale told in one language: its phrase table and every name in every case."""

    language: Language
    text: dict
    slots: dict  # everything a template may name: roles, ids, P, pay, claim, truth, rumour

    def fill(self, template: str, **extra) -> str:
        return template.format_map({**self.slots, **extra})


def voice(tale: Tale, bible: Bible, language: Language) -> Voice:
    text = phrases(language)
    cases = text.get("cases", {})

    def noun(name: str) -> Noun:
        return inflect(name, language, cases)

    slots: dict = {role: noun(text["servants"] if len(ids) > 1 else bible[ids[0]].display_name(language))
                   for role, ids in tale.roles.items()}
    for cid in dict.fromkeys([*(c for ids in tale.roles.values() for c in ids), *tale.extras]):
        slots[cid] = noun(bible[cid].display_name(language))
    horse = tale.pay == "horse" and "horse" in bible
    slots["pay"] = noun(bible["horse"].display_name(language) if horse else text["props"][tale.pay]["name"])
    lure = text["props"][tale.lure]
    slots["P"] = noun(lure.get("magic_name") or lure["name"])
    slots["claim"], slots["truth"] = lure["claim"], lure["truth"]
    slots["rumour"] = text["rumours"].get(tale.roles["M"][0], text["rumours"]["default"])
    return Voice(language, text, slots)


def direct_scenes(beats: list[Beat], moves: list[Move | None], tale: Tale, local: Voice, english: Voice,
                  rng: random.Random) -> list[SceneDraft]:
    """Cast, blocking, place, time, framing and words of every scene, in story order."""
    times = time_track(beats, tale.anchor, rng)
    drafts: list[SceneDraft] = []
    insert_done = False
    said: set[str] = set()  # every caption sentence so far: a board never says the same thing twice
    for n, (beat, move) in enumerate(zip(beats, moves, strict=True)):
        if move is None:
            setting, cast, props = tale.places["trick"], trick_cast(tale, english), [tale.lure, *tale.premise.props]
            dialogue = speech(local, "A", local.text["props"][tale.lure]["lure"])
        else:
            setting, cast, props = tale.places[move.place], move_cast(move, tale), [_prop(p, tale) for p in move.props]
            say = local.text["moves"][move.id].get("say")
            dialogue = speech(local, *say) if say else None
        previous = drafts[-1] if drafts else None
        shot = choose_shot(n, beat, move, cast, previous, insert_done, rng)
        insert_done = insert_done or shot == Shot.insert
        body = tell(move, cast, setting, tale, local)
        if previous is None or (previous.setting, previous.time) != (setting, times[n]):
            body = f"{slug(setting, times[n], local, said)} {body}".strip()
        body = unrepeated(body, said)
        drafts.append(SceneDraft(
            beat=beat, setting=setting, time=times[n], characters=cast,
            props=[p for p in dict.fromkeys(props) if p], shot=shot, angle=choose_angle(beat, shot, rng),
            caption=body, dialogue=dialogue, action=tell(move, cast, setting, tale, english),
            duration=4.0 if beat == Beat.trick else None,
        ))
    return drafts


def tell(move: Move | None, cast: list[CharacterDraft], setting: str, tale: Tale, voice: Voice) -> str:
    """A scene's text in `voice`: the move's caption, or the key moment with its reactions."""
    if move is None:
        return trick_caption(tale, cast, voice)
    return sentence_case(voice.fill(voice.text["moves"][move.id]["caption"], here=place(setting, voice)))


def move_cast(move: Move, tale: Tale) -> list[CharacterDraft]:
    cast = []
    for role in move.cast:
        pose, emotion, holds = (move.blocking.get(role, ["stand"]) + [None, None])[:3]
        for cid in tale.roles[role]:
            cast.append(CharacterDraft(id=cid, pose=pose, emotion=emotion or "neutral", holds=_prop(holds, tale)))
    if move.id in {"rides_off", "road_wisdom", "aul_laughs"} and tale.pay == "horse":
        # He rides off on the horse he was paid with, his donkey trotting alongside.
        cast.insert(1, CharacterDraft(id=tale.roles["H"][0], pose="walk"))
        cast[0] = cast[0].model_copy(update={"pose": "ride", "holds": None})
    return cast


def trick_cast(tale: Tale, voice: Voice) -> list[CharacterDraft]:
    """The lead, the dupe and everyone the logline names, as the logline directs them.

    A group whose reaction says where it stands (servants exchanging glances behind the Bai's
    back) gets that place, so staging puts them there.
    """
    role_of = {cid: role for role, ids in tale.roles.items() for cid in ids}
    lead = tale.roles["A"][0]
    ids = [lead, tale.roles["M"][0], *tale.premise.characters]
    holder = next((cid for cid in ids if tale.premise.direction(cid).holds), None)
    cast = []
    for cid in dict.fromkeys(ids):
        role = role_of.get(cid)
        pose, emotion = TRICK_BLOCKING.get(role, ("stand", "curious"))
        if role == "A" and holder not in (None, lead):
            pose = "point"  # someone else has the lure in hand: the lead points at it
        said = tale.premise.direction(cid)
        pose, emotion = said.pose or pose, said.emotion or emotion
        holds = (said.holds or tale.lure) if pose == "hold" else None
        cast.append(CharacterDraft(id=cid, pose=pose, emotion=emotion, holds=holds))
    places = lexicon().reaction_places
    placed = {cid: places[key] for key, ids, group in reactions(tale, cast, voice) if group and key in places
              for cid in ids}
    return [cd.model_copy(update={"place": placed[cd.id]}) if cd.id in placed else cd for cd in cast]


def trick_caption(tale: Tale, cast: list[CharacterDraft], voice: Voice) -> str:
    """The lure sentence, then how the others react (a group present in full reacts as one)."""
    parts = [voice.fill(voice.text["trick"])]
    for key, ids, group in merged_reactions(tale, cast, voice):
        if group:
            who, form = voice.slots[group], "pl"
        elif len(ids) > 1:  # several react alike: one sentence, not "X leans in. Y leans in."
            names = [str(voice.slots[cid]) for cid in ids]
            joined = f"{', '.join(names[:-1])} {voice.text['and']} {names[-1]}"
            who, form = Noun(joined, joined, joined, joined, joined), "pl"
        else:
            who, form = voice.slots[ids[0]], "sg"
        parts.append(voice.fill(voice.text["reactions"][key][form], X=who) + ".")
    return " ".join(sentence_case(p) for p in parts)


def merged_reactions(tale: Tale, cast: list[CharacterDraft], voice: Voice) -> list[tuple[str, list[str], str | None]]:
    """`reactions`, with the single characters who react the same way joined into one entry."""
    out: list[tuple[str, list[str], str | None]] = []
    alike: dict[str, list[str]] = {}
    for key, ids, group in reactions(tale, cast, voice):
        if group:
            out.append((key, ids, group))
        elif key in alike:
            alike[key].extend(ids)
        else:
            alike[key] = list(ids)
            out.append((key, alike[key], None))
    return out


def titles(tale: Tale, voice: Voice) -> list[str]:
    """Title templates: with someone the logline brings along (a camel, Улпан) when there is one,
    so the title tells this logline's tale and not only the lure's."""
    if tale.extras:
        return [voice.fill(t, X=voice.slots[tale.extras[0]]) for t in voice.text["titles_with"]]
    return voice.text["titles"]


def reactions(tale: Tale, cast: list[CharacterDraft], voice: Voice) -> list[tuple[str, list[str], str | None]]:
    """Who reacts to the key moment, in caption order: (reaction, their ids, their group role or None)."""
    present = {cd.id for cd in cast}
    groups = {cid: role for role, ids in tale.roles.items() if len(ids) > 1 and set(ids) <= present for cid in ids}
    known = voice.text["reactions"]
    seen: set[str] = set()
    out: list[tuple[str, list[str], str | None]] = []
    for cd in cast:
        if cd.id == tale.roles["A"][0] or cd.id in seen or len(out) >= MAX_REACTIONS:
            continue
        group = groups.get(cd.id)
        ids = tale.roles[group] if group else [cd.id]
        seen.update(ids)
        key = cd.emotion if cd.emotion in known else cd.pose if cd.pose in known else None
        if key:
            out.append((key, list(ids), group))
    return out


def place(setting: str, voice: Voice) -> SimpleNamespace:
    """`{here.name}`, `{here.at}`, `{here.to}` of a setting ("Юрта Бая", "в юрте Бая", "в юрту Бая")."""
    return SimpleNamespace(**{k: voice.fill(v) for k, v in voice.text["settings"][setting].items()})


def slug(setting: str, time: TimeOfDay, voice: Voice, said: set[str] = frozenset()) -> str:
    """The storyboard heading of a new place or time: "Юрта Бая, вечер."; coming back to a
    place already headed, "Снова в юрте Бая." (or no heading, once that is said too)."""
    here = place(setting, voice)
    heading = sentence_case(voice.text["slug"].format(place=here.name, time=voice.text["time_words"][time.value]))
    if heading in said:
        heading = sentence_case(voice.text["slug_again"].format(place=here.at))
    return "" if heading in said else heading


_SENTENCE_END = re.compile(r"(?:(?<=[.!?…])|(?<=[.!?…][»”]))\s+(?=[^\W\d_«“])")


def sentences(text: str) -> list[str]:
    """A caption's sentences ("Юрта Бая, день.", "Алдар Косе смеётся.")."""
    return [part for part in _SENTENCE_END.split(text.strip()) if part]


def unrepeated(caption: str, said: set[str]) -> str:
    """The caption without sentences the board has already said (all of it if nothing else is left)."""
    parts = sentences(caption)
    fresh = [p for p in parts if p not in said]
    said.update(parts)
    return " ".join(fresh or parts)


def speech(voice: Voice, role: str, line: str) -> str:
    return voice.text["speech"].format(who=sentence_case(str(voice.slots[role])), text=line)


def _prop(ref: str | None, tale: Tale) -> str | None:
    if ref == "P":
        return tale.lure
    if ref == "pay":
        return None if tale.pay == "horse" else tale.pay
    return ref


# -- camera and clock ------------------------------------------------------------------------


def choose_shot(n: int, beat: Beat, move: Move | None, cast: list, previous: SceneDraft | None,
                insert_done: bool, rng: random.Random) -> Shot:
    """Establishing first; the key moment in a medium (wide for a crowd); one insert of the
    lure after the trick; otherwise the move's framings, avoiding the previous one."""
    if move is None:
        return Shot.wide if len(cast) > 4 else Shot.medium
    if n == 0 or beat == Beat.setup:
        return Shot.establishing
    options = [s for s in move.shots or [Shot.medium, Shot.wide] if s != Shot.insert or not insert_done]
    if not options:
        options = [Shot.close_up] if len(cast) <= 2 else [Shot.medium]
    if Shot.insert in options:
        return Shot.insert
    varied = [s for s in options if previous is None or s != previous.shot] or options
    return rng.choice(varied)


def choose_angle(beat: Beat, shot: Shot, rng: random.Random) -> Angle:
    if shot == Shot.establishing:
        return rng.choice([Angle.high, Angle.high, Angle.eye_level])
    if shot == Shot.insert:
        return rng.choice([Angle.high, Angle.eye_level])
    if beat == Beat.trick or shot == Shot.close_up:
        return rng.choice([Angle.eye_level, Angle.low])
    return rng.choice([Angle.eye_level] * 4 + [Angle.low, Angle.high])


def time_track(beats: list[Beat], anchor: TimeOfDay, rng: random.Random) -> list[TimeOfDay]:
    """Times that only move forward and meet the logline's time at the trick.

    A night tale stays at night; otherwise the day starts at dawn or noon and may end at dusk.
    """
    if anchor == TimeOfDay.night:
        return [TimeOfDay.night] * len(beats)
    at = beats.index(Beat.trick)
    mid = TIMES.index(anchor)
    start = min(mid, rng.choice((0, 1)))
    end = max(mid, rng.choice((1, 2, 2)))
    out = []
    for n in range(len(beats)):
        if n <= at:
            t = start + (mid - start) * (n / at if at else 1)
        else:
            t = mid + (end - mid) * ((n - at) / (len(beats) - 1 - at))
        out.append(TIMES[int(t + 0.5)])
    return out
