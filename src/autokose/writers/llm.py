"""The LLM writer: any OpenAI-compatible chat-completions endpoint writes the story.

Works with OpenAI, Ollama (`http://localhost:11434/v1`), vLLM and the llama.cpp server.
The model is told who Aldar Köse is, who is in the cast and how a storyboard is built, and
answers with a compact JSON draft (`writers.common.StoryDraft`). The draft is checked; when
it is malformed or breaks a rule, the model gets the error back and tries again (at most
`max_retries` times). The Story is then built by the same code as the offline writer's, so
prompts and seeds come from the bible, never from the model.

Characters the model invents (ids not in the bible, and names or aliases that do not map to
one) are dropped from their scene with a logged warning rather than failing the run. The
key moment's cast is completed from the logline when the model leaves someone out.

Configuration, strongest first: explicit options (`--llm-base-url`, `--llm-model`), the
config file (TOML or YAML with base_url, model, api_key, timeout, max_retries, temperature,
max_tokens), then AUTOKOSE_LLM_BASE_URL / AUTOKOSE_LLM_MODEL / AUTOKOSE_LLM_API_KEY, then
OPENAI_BASE_URL / OPENAI_API_KEY.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import tomllib
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from autokose.bible import PROTAGONIST, Bible
from autokose.errors import InputError, format_validation_error
from autokose.fsio import read_text
from autokose.story import Angle, Beat, Language, Shot, Story, TimeOfDay
from autokose.vocabulary import PLACES, table
from autokose.writers.common import (
    CharacterDraft,
    StoryDraft,
    assemble_story,
    canonical_prop,
    check_request,
    plan_beats,
    resolve_characters,
)
from autokose.writers.fidelity import cast_for_logline, logline_elements, missing_elements
from autokose.writers.premise import Premise, character_matcher, read_premise

log = logging.getLogger("autokose.writers")

DEFAULT_BASE_URL = "https://api.openai.com/v1"
LANGUAGE_NAMES = {Language.ru: "Russian", Language.kk: "Kazakh", Language.en: "English"}
_ENV = {
    "base_url": ("AUTOKOSE_LLM_BASE_URL", "OPENAI_BASE_URL"),
    "model": ("AUTOKOSE_LLM_MODEL",),
    "api_key": ("AUTOKOSE_LLM_API_KEY", "OPENAI_API_KEY"),
}
_FENCE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.DOTALL)
_REFUSAL = re.compile(
    r"\b(I can(?:not|'t|’t)|I am unable|I'm unable|I won't|I'm sorry|as an AI)\b|не могу|извините|кешіріңіз",
    re.IGNORECASE,
)


class LLMSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    base_url: str = DEFAULT_BASE_URL
    model: str = Field(min_length=1)
    api_key: str | None = None
    timeout: float = Field(60.0, gt=0, description="Seconds to wait for one reply.")
    max_retries: int = Field(2, ge=0, le=10, description="Repair rounds after a malformed reply.")
    temperature: float = Field(0.7, ge=0, le=2)
    max_tokens: int | None = Field(None, gt=0)


def load_settings(config: str | Path | None = None, **explicit) -> LLMSettings:
    """Explicit options over the config file over the environment."""
    merged: dict = {}
    for key, names in _ENV.items():
        value = next((os.environ[n] for n in names if os.environ.get(n)), None)
        if value:
            merged[key] = value
    if config:
        merged.update(read_config(config))
    merged.update({k: v for k, v in explicit.items() if v is not None})
    if not merged.get("model"):
        raise InputError("the llm writer needs a model: --llm-model, `model` in --llm-config, or AUTOKOSE_LLM_MODEL")
    try:
        return LLMSettings.model_validate(merged)
    except ValidationError as e:
        raise InputError(f"llm settings: {format_validation_error(e)}") from None


def read_config(path: str | Path) -> dict:
    """A TOML or YAML file of LLM settings (flat, or under an `llm` table)."""
    path = Path(path)
    text = read_text(path, "LLM config file")
    try:
        data = tomllib.loads(text) if path.suffix.lower() == ".toml" else yaml.safe_load(text)
    except (tomllib.TOMLDecodeError, yaml.YAMLError) as e:
        raise InputError(f"{path}: not valid {'TOML' if path.suffix.lower() == '.toml' else 'YAML'} "
                         f"({str(e).splitlines()[0]})") from None
    if isinstance(data, dict) and isinstance(data.get("llm"), dict):
        data = data["llm"]
    if not isinstance(data, dict):
        raise InputError(f"{path}: expected a table of settings (base_url, model, api_key, timeout, ...)")
    unknown = sorted(set(data) - set(LLMSettings.model_fields))
    if unknown:
        raise InputError(f"{path}: unknown setting '{unknown[0]}' (settings: {', '.join(LLMSettings.model_fields)})")
    return data


class DraftError(ValueError):
    """A reply the model can fix: the message goes back to it."""


class LLMWriter:
    name = "llm"

    def __init__(self, base_url: str | None = None, model: str | None = None, api_key: str | None = None,
                 config: str | Path | None = None, timeout: float | None = None, max_retries: int | None = None,
                 temperature: float | None = None, max_tokens: int | None = None):
        self.settings = load_settings(config, base_url=base_url, model=model, api_key=api_key, timeout=timeout,
                                      max_retries=max_retries, temperature=temperature, max_tokens=max_tokens)
        self._json_mode = True  # dropped for servers that reject response_format
        self._client = None

    def write(self, logline: str, *, scenes: int, seed: int, bible: Bible) -> Story:
        logline = check_request(logline, scenes, seed)
        bible = cast_for_logline(logline_elements(logline, bible), bible)  # its wolf, its Жантык
        premise = read_premise(logline, bible)
        beats = plan_beats(scenes, random.Random(f"autokose-llm:{seed}:{logline}"))
        messages = [
            {"role": "system", "content": system_prompt(bible)},
            {"role": "user", "content": request_prompt(logline, premise.language, beats)},
        ]
        attempts = 1 + self.settings.max_retries
        for attempt in range(1, attempts + 1):
            reply = self._complete(messages, seed)
            try:
                draft = parse_draft(reply, scenes=scenes, language=premise.language, bible=bible)
                draft = complete_key_moment(draft, premise, bible)
                story = assemble_story(draft, logline=logline, language=premise.language, bible=bible, seed=seed)
                check_fidelity(story, logline, bible)
                return story
            except (DraftError, InputError) as e:
                problem = str(e)
                log.info("LLM reply %d/%d rejected: %s", attempt, attempts, problem)
                messages += [
                    {"role": "assistant", "content": reply},
                    {"role": "user", "content": f"That reply cannot be used: {problem}. Send the corrected "
                                                f"story again as one JSON object, with nothing else."},
                ]
        raise InputError(f"the LLM at {self.settings.base_url} gave no usable story in {attempts} "
                         f"attempt(s); last problem: {problem}")

    # -- transport ----------------------------------------------------------------------

    def _complete(self, messages: list[dict], seed: int) -> str:
        """One chat completion; every transport failure becomes a one-line InputError."""
        import openai

        s = self.settings
        if self._client is None:
            # Transport retries off: our own loop retries bad content, and a timeout should
            # be reported after `timeout` seconds, not three times that.
            self._client = openai.OpenAI(base_url=s.base_url, api_key=s.api_key or "not-needed",
                                         timeout=s.timeout, max_retries=0)
        kwargs = dict(model=s.model, messages=messages, temperature=s.temperature, seed=seed)
        if s.max_tokens:
            kwargs["max_tokens"] = s.max_tokens
        try:
            try:
                response = self._client.chat.completions.create(
                    **kwargs, **({"response_format": {"type": "json_object"}} if self._json_mode else {}))
            except (openai.BadRequestError, openai.UnprocessableEntityError):
                if not self._json_mode:
                    raise
                self._json_mode = False  # e.g. an older server without JSON mode: ask once more without it
                response = self._client.chat.completions.create(**kwargs)
        except openai.APITimeoutError:
            raise InputError(f"the LLM at {s.base_url} did not answer within {s.timeout:g} s "
                             f"(raise `timeout` in the LLM config)") from None
        except openai.AuthenticationError:
            raise InputError(f"the LLM at {s.base_url} rejected the API key (HTTP 401); "
                             f"set AUTOKOSE_LLM_API_KEY or `api_key` in the LLM config") from None
        except openai.PermissionDeniedError:
            raise InputError(f"the LLM at {s.base_url} denied access to model '{s.model}' (HTTP 403)") from None
        except openai.NotFoundError:
            raise InputError(f"the LLM at {s.base_url} has no model '{s.model}' "
                             f"or no /chat/completions (HTTP 404)") from None
        except openai.APIConnectionError:
            raise InputError(f"cannot connect to the LLM at {s.base_url} (is the server running?)") from None
        except openai.APIStatusError as e:
            raise InputError(f"the LLM at {s.base_url} answered HTTP {e.status_code}: "
                             f"{_first_line(e.message)}") from None
        return _reply_text(response, s.max_tokens)


def _reply_text(response, max_tokens: int | None) -> str:
    choices = getattr(response, "choices", None) or []
    if not choices:
        raise InputError("the LLM returned an empty reply (no choices)")
    choice = choices[0]
    if choice.finish_reason == "length":
        limit = f"max_tokens={max_tokens}" if max_tokens else "the server's token limit"
        raise InputError(f"the LLM reply was cut off by {limit} (finish_reason=length); "
                         f"ask for fewer scenes or raise max_tokens")
    message = choice.message
    refusal = getattr(message, "refusal", None)
    content = (message.content or "").strip() if message else ""
    if refusal or (content and "{" not in content and _REFUSAL.search(content)):
        raise InputError(f"the model refused to write this story: {_first_line(refusal or content)}")
    if choice.finish_reason == "content_filter":
        raise InputError("the LLM's content filter blocked the reply")
    if not content:
        raise InputError("the LLM returned an empty reply")
    return content


def _first_line(text: str, limit: int = 160) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


# -- reading the reply ------------------------------------------------------------------


def extract_json(text: str) -> object:
    """The JSON object in a reply: inside ```json fences, or the first {...} in the text."""
    problem = "no JSON object in the reply"
    for candidate in [m.group(1) for m in _FENCE.finditer(text)] + [text]:
        start = candidate.find("{")
        if start < 0:
            continue
        try:
            obj, _ = json.JSONDecoder().raw_decode(candidate, start)
            return obj
        except json.JSONDecodeError as e:
            problem = f"invalid JSON ({e.msg} at line {e.lineno}, column {e.colno})"
    raise DraftError(problem)


def parse_draft(reply: str, *, scenes: int, language: Language, bible: Bible) -> StoryDraft:
    """Validate a reply against the draft schema and the request; DraftError says what to fix."""
    data = extract_json(reply)
    try:
        draft = StoryDraft.model_validate(data)
    except ValidationError as e:
        raise DraftError(format_validation_error(e)) from None
    if len(draft.scenes) != scenes:
        raise DraftError(f"expected exactly {scenes} scenes, got {len(draft.scenes)}")
    if not any(s.beat == Beat.trick for s in draft.scenes):
        raise DraftError("no scene has beat 'trick' (the logline's key moment)")
    script = re.compile(r"[\u0400-\u04ff]" if language != Language.en else r"[A-Za-z]")
    for n, scene in enumerate(draft.scenes):
        if not script.search(scene.caption):
            raise DraftError(f"scenes[{n}].caption is not in {LANGUAGE_NAMES[language]}")
    who = character_matcher(bible)
    lead = bible.protagonist
    if not any(lead in resolve_characters(c.id, bible, who) for s in draft.scenes for c in s.characters):
        raise DraftError(f"the protagonist {bible[lead].name} (id '{lead}') is in no scene")
    return draft


def check_fidelity(story: Story, logline: str, bible: Bible) -> None:
    """A DraftError naming what the logline names and the story still leaves out (a place the
    repair cannot invent); the model is asked again, and the last answer's gap is the error."""
    missing = missing_elements(story, logline, bible)
    if missing:
        said = ", ".join(f"{e.kind} '{e.words}' ({e.key})" for e in missing)
        raise DraftError(f"the story leaves out what the logline names: {said}")


def complete_key_moment(draft: StoryDraft, premise: Premise, bible: Bible) -> StoryDraft:
    """Add to the trick scene anyone and anything the logline names that the model left out:
    its characters (animals and custom names included) and its props."""
    who = character_matcher(bible)
    n = next(i for i, s in enumerate(draft.scenes) if s.beat == Beat.trick)
    scene = draft.scenes[n]
    present = {cid for c in scene.characters for cid in resolve_characters(c.id, bible, who)}
    missing = [cid for cid in [bible.protagonist, *premise.characters] if cid not in present]
    used = {canonical_prop(p) for s in draft.scenes for p in s.props}
    used |= {canonical_prop(c.holds) for s in draft.scenes for c in s.characters if c.holds}
    props = [p for p in premise.props if p not in used]
    if not missing and not props:
        return draft
    added = []
    for cid in dict.fromkeys(missing):
        said = premise.direction(cid)
        added.append(CharacterDraft(id=cid, pose=said.pose or "stand", emotion=said.emotion or "neutral",
                                    holds=said.holds))
    scenes = list(draft.scenes)
    scenes[n] = scene.model_copy(update={"characters": [*scene.characters, *added],
                                         "props": [*scene.props, *props]})
    return draft.model_copy(update={"scenes": scenes})


# -- prompts ------------------------------------------------------------------------------

CONTEXT = """\
You write storyboards of Aldar Köse tales.

Aldar Köse (Kazakh: Алдар Көсе, "the beardless trickster") is the hero of Kazakh folk tales: a
poor, cheerful, quick-witted young man with no beard, in a tall fur tymak hat and a patched
chapan robe, who wanders the steppe on his small grey donkey. He outwits greedy bais (rich
men), stingy merchants, pompous mullahs and even shaitans, usually by selling them a worthless
"wonder" (a "golden egg", a kazan that cooks by itself, a coat full of holes "warmer than any
fur", a golden bird under his hat) and riding off with their money, horse or fur coat. The
tales laugh at greed and arrogance, never at the poor. Show Kazakh people, dress, yurts and
customs with respect, without caricature; keep the humour warm."""

RULES = """\
Rules:
- Exactly the requested number of scenes, one per beat of the beat plan, in order.
- The logline is the key moment: make it the "trick" scene, with everyone it names in it.
- Every animal, person, prop and place the logline names is in the story (animals and people
  by their cast ids); who sells what to whom follows the logline.
- Scenes follow from each other; captions never just repeat the logline.
- Scene 1 is an establishing shot. Vary the shots; show the key prop once in an insert shot.
- Times of day only move forward; a night tale stays at night.
- Captions: one or two sentences in the present tense, like a storyboard caption, in the
  requested language, with the characters' names in that language.
- dialogue is optional: "Name: «line»". action: one sentence in English.
- Aldar's donkey is often with him, even when the logline does not name it.
- characters are listed left to right with pose (from the list), emotion, the prop they hold,
  and place: "behind" for someone standing behind the others (e.g. servants behind their
  master), else null."""


def system_prompt(bible: Bible) -> str:
    vocab = table()
    cast = "\n".join(
        f"- {c.id}: {c.name} ({', '.join(f'{k}: {v}' for k, v in c.names.items())}) — {c.role}; looks: {c.appearance}"
        for c in bible
    )
    example = {
        "title": "...",
        "scenes": [{
            "beat": "setup", "setting": "road", "time": "dawn",
            "characters": [{"id": bible.protagonist, "pose": "ride", "emotion": "cheerful", "holds": None,
                            "place": None}],
            "props": [], "shot": "establishing", "angle": "high", "caption": "...", "dialogue": None,
            "action": "...",
        }],
    }
    lead = bible[bible.protagonist]
    # A characters file's own protagonist takes Aldar's part (bible.PROTAGONIST is the default).
    recast = ([] if lead.id == PROTAGONIST else
              [f"The protagonist of this story is {lead.name} (id '{lead.id}'): cast them in Aldar Köse's part "
               "in every tale; Aldar appears only if the logline names him."])
    return "\n\n".join([
        CONTEXT, *recast,
        f"Cast (use these ids):\n{cast}",
        "Vocabulary (use these words):\n"
        f"- beats: {_names(Beat)}\n- shots: {_names(Shot)}\n- angles: {_names(Angle)}\n- times: {_names(TimeOfDay)}\n"
        f"- poses: {', '.join(vocab.poses)}\n- emotions: {', '.join(vocab.emotions)}\n"
        f"- places: {', '.join(PLACES)}\n"
        f"- settings: {', '.join(vocab.settings)}\n- props: {', '.join(vocab.story_props)} (or a short English name)",
        RULES,
        "Reply with one JSON object and nothing else, shaped like this:\n"
        + json.dumps(example, ensure_ascii=False),
    ])


def request_prompt(logline: str, language: Language, beats: list[Beat]) -> str:
    plan = ", ".join(f"{n} {b.value}" for n, b in enumerate(beats, 1))
    name = LANGUAGE_NAMES[language]
    return (f"Logline: {logline}\n"
            f"Language: {name} ({language.value}); write the title, captions and dialogue in {name}.\n"
            f"Scenes: {len(beats)}\nBeat plan: {plan}")


def _names(enum) -> str:
    return ", ".join(e.value for e in enum)
