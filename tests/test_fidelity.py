"""Logline fidelity: every animal, prop, person and place a logline names is in story.json.

Issue 10's measure, over loglines of our own in Russian, Kazakh and English: `missing_elements`
is empty for each, no caption sentence repeats inside a board, and the examples the issue lists
(a Kazakh wolf and camel, Жантык and Улпан with a camel, the magic shuba sold to the Bai,
"Двор Жантыка") come out right.
"""

from __future__ import annotations

import re
import time

import pytest

from autokose.bible import Bible, builtin_bible
from autokose.language import inflect
from autokose.story import Beat, Character, Story
from autokose.vocabulary import table
from autokose.writers import get_writer
from autokose.writers.fidelity import Element, cast_for_logline, character_id, logline_elements, missing_elements
from autokose.writers.offline import sentences

LOGLINES = [
    # Russian
    "Жантык и Улпан ведут верблюда на базар, а Алдар Косе продаёт Жантыку волшебный казан.",
    "Алдар Косе продаёт Баю волшебную шубу.",
    "Алдар Косе встречает волка в степи и обманывает его.",
    "Хитрый Алдар Косе меняет латаный чапан на лисью шубу Бая.",
    "Ночью Алдар Косе дурачит шайтана у реки, а ослик прячется за камнем.",
    "Алдар Косе показывает купцу «золотое яйцо» на базаре, рядом блеет баран.",
    "Пастух Ербол гонит овец, а Алдар Косе предлагает ему волшебную камчу.",
    "Мулла и его коза слушают, как Алдар Косе хвастается тымаком.",
    "Алдар Косе верхом на верблюде въезжает в аул Сарсена.",
    "Беркут кружит над юртой, пока Алдар Косе торгуется с Баем за коня.",
    "Собака Бая лает на Алдара Косе во дворе.",
    # Kazakh
    "Алдар Көсе қасқыр мен түйені алдап, байдың ауласында ішігін сатады.",
    "Алдар Көсе саудагерге сиқырлы қамшы сатады, ал саудагердің иті үріп тұр.",
    "Ұлпанға Алдар Көсе сиқырлы қазан көрсетеді.",
    "Түнде шайтан Алдар Көсені тауда қуып жетеді, бүркіт аспанда қалықтайды.",
    "Алдар Көсе есегіне мініп, базарда ешкі сатып тұрған Жантықты кездестіреді.",
    "Бай қойларын санап отыр, Алдар Көсе оған «алтын жұмыртқа» ұсынады.",
    "Алдар Көсе молдаға тымақтың астында алтын құс отыр дейді.",
    "Қасымның түйесі өзен жағасында, ал Алдар Көсе оған сиқырлы ішік сатады.",
    "Алдар Көсе байдың атын сиқырлы қазанға айырбастайды.",
    # English
    "Aldar sells the Bai a magic shuba.",
    "Aldar Köse meets a hungry wolf on the road and tricks it with his tymak.",
    "Aldar Köse rides a camel into the bazaar and sells the merchant a magic whip.",
    "Zhantyk and his dog guard the Bai's yurt while Aldar Köse offers a golden egg.",
    "At dusk Aldar Köse swaps his patched chapan for the mullah's fur coat by the river.",
    "An eagle watches Aldar Köse haggle with the merchant over a goat.",
    "Aldar Köse tells Ulpan that his kazan cooks meat without fire.",
    "The Bai's servants chase Aldar Köse and his donkey through the aul at night.",
    "Aldar Köse sells a ram to the greedy Bai in the mountains.",
    "Aldar Köse and Aigerim outwit the shaitan in the steppe with a magic purse.",
    "Aldar Köse trades the Bai a magic whip for his horse.",
    "A sheep, a goat and a camel follow Aldar Köse to Sarsen's courtyard.",
]


WOLF_CAMEL_KK = "Алдар Көсе қасқыр мен түйені алдап, байдың ауласында ішігін сатады."
ZHANTYK = "Жантык и Улпан ведут верблюда на базар, а Алдар Косе продаёт Жантыку волшебный казан."
SHUBA = "Aldar sells the Bai a magic shuba."


@pytest.fixture(scope="module")
def bible() -> Bible:
    return builtin_bible()


def write(logline: str, bible: Bible, scenes: int = 8, seed: int = 0) -> Story:
    return get_writer("offline").write(logline, scenes=scenes, seed=seed, bible=bible)


def trick(story: Story):
    return next(s for s in story.scenes if s.beat == Beat.trick)


def board_sentences(story: Story) -> list[str]:
    return [part for s in story.scenes for part in sentences(s.caption)]


# -- the measure over many loglines ------------------------------------------------------------


def test_there_are_at_least_thirty_loglines_in_every_language():
    assert len(LOGLINES) >= 30
    assert sum(bool(re.search("[әғқңөұүһі]", t)) for t in LOGLINES) >= 8
    assert sum(not re.search("[а-яё]", t, re.I) for t in LOGLINES) >= 8


@pytest.mark.parametrize("logline", LOGLINES)
def test_every_logline_element_is_in_story_json(bible, logline):
    elements = logline_elements(logline, bible)
    assert len(elements) >= 3, elements  # the loglines name things; the reader must find them
    for seed in (0, 1):
        story = write(logline, bible, seed=seed)
        assert missing_elements(story, logline, bible) == []
        assert missing_elements(Story.from_json(story.to_json()), logline, bible) == []
        kinds = {c.kind for c in story.characters}
        for e in elements:
            if e.kind == "animal":
                assert e.key in kinds, e  # drawn as that animal, never as a man in a robe
            if e.custom:
                [who] = [c for c in story.characters if c.name == e.key]
                assert who.kind == "human"


@pytest.mark.parametrize("logline", LOGLINES)
def test_no_caption_sentence_repeats_inside_a_board(bible, logline):
    said = board_sentences(write(logline, bible, seed=2))
    repeated = sorted({s for s in said if said.count(s) > 1})
    assert repeated == []


def test_the_offline_writer_stays_fast(bible):
    start = time.process_time()
    for logline in LOGLINES:
        write(logline, bible, seed=5)
    assert (time.process_time() - start) / len(LOGLINES) < 0.5


# -- the examples -------------------------------------------------------------------


def test_a_kazakh_wolf_and_camel_are_in_the_key_moment(bible):
    story = write(WOLF_CAMEL_KK, bible)
    kinds = {c.id: c.kind for c in story.characters}
    scene = trick(story)
    assert {"wolf", "camel"} <= {kinds[cid] for cid in scene.characters}
    assert scene.setting == "courtyard" and "fur_coat" in scene.props
    assert "Қасқыр" in scene.caption and "түйе" in scene.caption


def test_zhantyk_ulpan_and_the_camel_are_cast_and_named(bible):
    story = write(ZHANTYK, bible)
    names = {c.name: c for c in story.characters}
    assert {"Жантык", "Улпан"} <= set(names) and names["Жантык"].id == "zhantyk"
    assert any(c.kind == "camel" for c in story.characters)
    scene = trick(story)
    assert {"zhantyk", "ulpan"} <= set(scene.characters) and scene.setting == "bazaar"
    assert "Жантыку" in scene.caption  # "показывает Жантыку": the dative, not "Жантык"
    other = write("Алдар Косе меняет латаный чапан на лисью шубу Бая.", bible)
    assert story.title != other.title
    assert [s.caption for s in story.scenes] != [s.caption for s in other.scenes]


def test_a_custom_name_is_declined_in_russian_captions(bible):
    story = write("Алдар Косе приходит во двор Жантыка и продаёт ему волшебный казан.", bible)
    captions = " ".join(s.caption for s in story.scenes)
    assert "Двор Жантыка" in captions and "Двор Жантык," not in captions and "Двор Жантык." not in captions


def test_russian_names_decline_by_the_regular_rules():
    assert (inflect("Жантык", "ru").gen, inflect("Жантык", "ru").ins) == ("Жантыка", "Жантыком")
    aisha = inflect("Айша", "ru")
    assert (aisha.gen, aisha.acc, aisha.ins) == ("Айши", "Айшу", "Айшей")
    assert inflect("Алексей", "ru").dat == "Алексею"
    assert inflect("старый пастух", "ru").gen == "старый пастух"  # no rule guessed for phrases
    assert inflect("Улпан", "ru").gen == "Улпан", "a woman's name ending in a consonant does not decline"
    assert inflect("Мейрамгуль", "ru").dat == "Мейрамгуль" and inflect("Сарсен", "ru").gen == "Сарсена"


@pytest.mark.parametrize("logline", [SHUBA, "Алдар Косе продаёт Баю волшебную шубу.",
                                     "Алдар Көсе байға сиқырлы ішік сатады."])
def test_aldar_sells_the_magic_shuba_and_the_bai_pays(bible, logline):
    story = write(logline, bible)
    scene = trick(story)
    assert scene.direction("aldar").holds == "fur_coat" or "fur_coat" in scene.props
    paid = [s for s in story.scenes if s.index > scene.index and s.direction("aldar").holds == "purse"]
    assert paid  # the Bai pays Aldar ...
    assert not any(s.direction("aldar").holds == "fur_coat" for s in story.scenes if s.index >= paid[0].index)
    for deal in (s for s in paid if "bai" in s.characters):  # ... and takes the coat
        assert deal.direction("bai").holds in ("fur_coat", None)


def test_the_classic_swap_still_gives_aldar_the_coat(bible):
    story = write("Хитрый Алдар Косе меняет латаный чапан на лисью шубу Бая.", bible)
    assert trick(story).direction("aldar").holds == "patched_coat"
    assert any(s.direction("aldar").holds == "fur_coat" for s in story.scenes if s.beat == Beat.resolution) or any(
        "fur_coat" in s.props for s in story.scenes if s.beat == Beat.resolution)


# -- variety and logic ------------------------------------------------------------------------


def test_different_loglines_with_one_seed_give_different_titles_and_plans(bible):
    stories = [write(t, bible, seed=4) for t in LOGLINES]
    assert len({s.title for s in stories}) >= len(stories) * 2 // 3
    assert len({tuple(sc.caption for sc in s.scenes) for s in stories}) == len(stories)


def test_alike_reactions_are_one_sentence(bible):
    story = write("Алдар Косе показывает Баю волшебный казан, а жена Бая и мулла смотрят с любопытством.", bible)
    caption = trick(story).caption
    assert caption.count("поближе") == 1, caption
    assert "Жена Бая и мулла" in caption


@pytest.mark.parametrize("logline", LOGLINES)
def test_every_trick_pays_off(bible, logline):
    story = write(logline, bible, seed=1)
    pays = {k for k, p in table().story_props.items() if p.role == "payment"}
    after = [s for s in story.scenes if s.index > trick(story).index]
    assert any(pays & set(s.props) or "horse" in s.characters for s in after)


@pytest.mark.parametrize("seed", range(6))
def test_english_captions_agree_with_the_scene(bible, seed):
    for logline in [t for t in LOGLINES if not re.search("[а-яё]", t, re.I)]:
        for s in write(logline, bible, seed=seed).scenes:
            text = s.caption.lower()
            if "donkey" in text:
                assert "donkey" in s.characters, s.caption
            for word, prop in (("purse", "purse"), ("fur coat", "fur_coat"), ("bowl", "tea_bowl")):
                if word in text:
                    assert prop in s.props, s.caption
            assert "sheep" not in text or any(c.startswith("sheep") for c in s.characters), s.caption
            if s.setting == "bazaar":
                assert "household" not in text and "guest" not in text, s.caption


# -- the reader and the checker --------------------------------------------------------------


@pytest.mark.parametrize("logline, expected", [
    ("Алдар Косе ведёт верблюда", ("animal", "camel")),
    ("Алдар Көсе түйені жетектейді", ("animal", "camel")),
    ("Aldar Köse and two camels", ("animal", "camel")),
    ("Алдар Косе верхом на коне", ("animal", "horse")),
    ("Алдар Косе и Жантыку", ("person", "Жантыку")),
    ("Алдар Көсе Жантықтың ауласында", ("person", "Жантық")),
    ("Алдар Көсе Ұлпанға ішік сатады", ("person", "Ұлпан")),
    ("Aldar Köse visits Zhantyk's yurt", ("person", "Zhantyk")),
    ("Алдар Косе в ауле Сарсена", ("person", "Сарсен")),
    ("Алдар Косе в юрте", ("place", "yurt")),
    ("Aldar sells the Bai a magic shuba", ("prop", "fur_coat")),
])
def test_logline_elements_reads_every_case(bible, logline, expected):
    assert expected in {(e.kind, e.key) for e in logline_elements(logline, bible)}


@pytest.mark.parametrize("logline", ["Однажды Алдар Косе обманул Бая.", "Hungry and cold, Aldar meets the Bai.",
                                     "Пастух Ербол гонит овец.", "Хитрый Алдар Косе и жадный Бай."])
def test_sentence_openers_are_no_names(bible, logline):
    names = [e.key for e in logline_elements(logline, bible) if e.custom]
    assert names in ([], ["Ербол"])


def test_missing_elements_names_what_a_story_leaves_out(bible):
    story = write(ZHANTYK, bible)
    without_camel = story.model_copy(update={
        "characters": [c for c in story.characters if c.kind != "camel"],
        "scenes": [s.model_copy(update={"characters": [c for c in s.characters if c != "camel"],
                                        "blocking": {k: v for k, v in s.blocking.items() if k != "camel"}})
                   for s in story.scenes]})
    assert [(e.kind, e.key) for e in missing_elements(without_camel, ZHANTYK, bible)] == [("animal", "camel")]
    plain = write("Алдар Косе обманывает Бая.", bible)
    missing = {(e.kind, e.key) for e in missing_elements(plain, ZHANTYK, bible)}
    assert {("person", "Жантык"), ("person", "Улпан"), ("animal", "camel"), ("prop", "cauldron")} <= missing


def test_cast_for_logline_adds_animals_and_people_once(bible):
    elements = logline_elements("Жантык и его волк, волк и ослик", bible)
    cast = cast_for_logline(elements, bible)
    added = [c for c in cast if c.id not in bible]
    assert [(c.id, c.kind) for c in added] == [("zhantyk", "human"), ("wolf", "wolf")]
    assert cast_for_logline([], bible) is bible
    assert character_id("Ұлпан") == "ulpan" and character_id("Жантық") == "zhantyq"
    assert Element("person", "bai", "Бая").custom is False


def test_a_bible_wolf_is_cast_for_the_word_wolf(bible):
    own = Bible([*bible, Character(id="grey_wolf", name="Grey", kind="wolf", build="animal")])
    logline = "Алдар Косе встречает волка в степи."
    story = write(logline, own)
    assert "grey_wolf" in trick(story).characters and not any(c.id == "wolf" for c in story.characters)
    assert missing_elements(story, logline, own) == []
