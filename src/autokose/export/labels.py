"""Words printed on a board, in the story's language (ru, kk, en).

Boards go to Kazakh and Russian directors: shot sizes and angles use the terms of their own
film crews ("крупный план", "ірі план"), not the enum names of story.json.
"""

from __future__ import annotations

import re
from enum import Enum

from autokose.story import Language

TEXT: dict[str, dict[str, str]] = {
    "en": {
        "scene": "Scene", "scenes": "scene|scenes", "runtime": "running time", "minutes": "min", "shot": "Shot", "angle": "Angle",
        "setting": "Setting", "time": "Time", "characters": "Characters", "duration": "Duration",
        "missing": "frame not rendered yet", "identity": "Identity", "identity_title": "Character identity",
        "page": "page", "seconds": "s", "notes": "Notes", "dialogue": "Dialogue",
        "score.frames_ok": "ok", "score.frames_low": "low", "score.frames_none": "not scored",
        "score.mean_identity": "mean", "score.min_identity": "lowest", "score.protagonist_consistency": "consistency of",
        "score.models": "models", "score.threshold": "threshold", "score.id_swaps": "ID swaps",
        "shot.establishing": "establishing shot", "shot.wide": "wide shot", "shot.medium": "medium shot",
        "shot.close_up": "close-up", "shot.over_the_shoulder": "over the shoulder", "shot.insert": "insert",
        "angle.eye_level": "eye level", "angle.low": "low angle", "angle.high": "high angle",
        "time.dawn": "dawn", "time.day": "day", "time.dusk": "dusk", "time.night": "night",
    },
    "ru": {
        "scene": "Сцена", "scenes": "сцена|сцены|сцен", "runtime": "хронометраж", "minutes": "мин", "shot": "План", "angle": "Ракурс",
        "setting": "Место", "time": "Время", "characters": "Персонажи", "duration": "Длительность",
        "missing": "кадр ещё не отрисован", "identity": "Сходство", "identity_title": "Сходство персонажей",
        "page": "стр.", "seconds": "с", "notes": "Заметки", "dialogue": "Реплика",
        "score.frames_ok": "в норме", "score.frames_low": "низкое сходство", "score.frames_none": "без оценки",
        "score.mean_identity": "среднее", "score.min_identity": "минимум", "score.protagonist_consistency": "постоянство:",
        "score.models": "модели", "score.threshold": "порог", "score.id_swaps": "подмены лиц",
        "shot.establishing": "дальний план", "shot.wide": "общий план", "shot.medium": "средний план",
        "shot.close_up": "крупный план", "shot.over_the_shoulder": "через плечо", "shot.insert": "деталь",
        "angle.eye_level": "на уровне глаз", "angle.low": "нижний ракурс", "angle.high": "верхний ракурс",
        "time.dawn": "рассвет", "time.day": "день", "time.dusk": "сумерки", "time.night": "ночь",
        "setting.steppe": "степь", "setting.yurt": "юрта", "setting.yurt_interior": "в юрте", "setting.courtyard": "двор бая",
        "setting.aul": "аул", "setting.village": "аул", "setting.bazaar": "базар", "setting.market": "базар",
        "setting.road": "дорога", "setting.well": "колодец", "setting.river": "река", "setting.mountains": "горы",
        "setting.desert": "пустыня", "setting.forest": "лес", "setting.palace": "дворец",
        "setting.mosque": "мечеть", "setting.caravan": "караван", "setting.pasture": "пастбище",
    },
    "kk": {
        "scene": "Сахна", "scenes": "сахна", "runtime": "ұзақтығы", "minutes": "мин", "shot": "План", "angle": "Ракурс",
        "setting": "Орын", "time": "Уақыт", "characters": "Кейіпкерлер", "duration": "Ұзақтығы",
        "missing": "кадр әлі салынбаған", "identity": "Ұқсастық", "identity_title": "Кейіпкерлердің ұқсастығы",
        "page": "бет", "seconds": "с", "notes": "Ескертпелер", "dialogue": "Реплика",
        "score.frames_ok": "қалыпты", "score.frames_low": "ұқсастығы төмен", "score.frames_none": "бағаланбаған",
        "score.mean_identity": "орташа", "score.min_identity": "ең төмен", "score.protagonist_consistency": "тұрақтылығы:",
        "score.models": "модельдер", "score.threshold": "шегі", "score.id_swaps": "бет алмасуы",
        "shot.establishing": "алыс план", "shot.wide": "жалпы план", "shot.medium": "орта план",
        "shot.close_up": "ірі план", "shot.over_the_shoulder": "иық арқылы", "shot.insert": "деталь",
        "angle.eye_level": "көз деңгейінде", "angle.low": "төменнен", "angle.high": "жоғарыдан",
        "time.dawn": "таң", "time.day": "күндіз", "time.dusk": "ымырт", "time.night": "түн",
        "setting.steppe": "дала", "setting.yurt": "киіз үй", "setting.yurt_interior": "киіз үй іші", "setting.courtyard": "бай ауласы",
        "setting.aul": "ауыл", "setting.village": "ауыл", "setting.bazaar": "базар", "setting.market": "базар",
        "setting.road": "жол", "setting.well": "құдық", "setting.river": "өзен", "setting.mountains": "таулар",
        "setting.desert": "шөл", "setting.forest": "орман", "setting.palace": "сарай",
        "setting.mosque": "мешіт", "setting.caravan": "керуен", "setting.pasture": "жайылым",
    },
}


class Labels:
    """Look up board words for one language; English fills any gap."""

    def __init__(self, language: Language | str):
        self.code = language.value if isinstance(language, Language) else str(language)
        self._text = {**TEXT["en"], **TEXT.get(self.code, {})}

    def __getitem__(self, key: str) -> str:
        return self._text[key]

    def scene(self, index: int) -> str:
        return f"{self['scene']} {index}"

    def term(self, value: Enum) -> str:
        """Shot, angle or time of day: `Shot.close_up` → 'крупный план'."""
        group = {"Shot": "shot", "Angle": "angle", "TimeOfDay": "time"}[type(value).__name__]
        return self._text.get(f"{group}.{value.value}", value.value.replace("_", " "))

    def setting(self, setting: str) -> str:
        """Known setting ids are translated; free text (an LLM's 'юрта Бая') is shown as written."""
        return self._text.get(f"setting.{setting.strip().lower()}", setting.replace("_", " "))

    def scenes(self, n: int) -> str:
        """'8 сцен', '2 сцены', '21 сцена' (Kazakh keeps the noun singular after a numeral)."""
        forms = self["scenes"].split("|")
        if len(forms) == 3:  # Russian: one / few / many
            few = n % 10 in (2, 3, 4) and n % 100 not in (12, 13, 14)
            form = forms[0] if n % 10 == 1 and n % 100 != 11 else forms[1] if few else forms[2]
        else:
            form = forms[0] if n == 1 else forms[-1]
        return f"{n} {form}"

    def facts(self, scenes: int, seconds: float) -> str:
        """The board in one line: '8 сцен · хронометраж 29 с'."""
        return f"{self.scenes(scenes)} · {self['runtime']} {self.runtime(seconds)}"

    def runtime(self, seconds: float) -> str:
        """Total running time: '29 с', '1 мин 35 с'."""
        if seconds < 60:
            return self.seconds(seconds)
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes} {self['minutes']} {rest} {self['seconds']}" if rest else f"{minutes} {self['minutes']}"

    def seconds(self, value: float) -> str:
        text = f"{value:.1f}".removesuffix(".0") if value < 60 else f"{value:.0f}"
        if self.code != "en":
            text = text.replace(".", ",")
        return f"{text} {self['seconds']}"


def bind_short_words(text: str) -> str:
    """Keep one- and two-letter words (в, к, на, и) with the next word, and a dash with the word before it,
    as Russian and Kazakh typesetting expects: no line of a board ends in a lone preposition.

    Bound with no-break spaces, which every wrapper here (fpdf2, sheet.wrap) keeps on one line.
    """
    text = re.sub(r"(?<!\w)(\w{1,2}) (?=\w)", "\\1\u00a0", text)
    return re.sub(r" ([—–])", "\u00a0\\1", text)
