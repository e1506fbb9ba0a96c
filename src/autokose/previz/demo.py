"""A hand-built demo board with the built-in cast: no writer needed to try the previz renderer.

    make_story(*scenes) -> Story     the built-in cast plus the given scenes (indices filled in)
    scene(chars, **fields) -> dict   one scene's fields; blocking given as {id: (pose, emotion, holds, place)}
    board_story() -> Story           an 8-scene board touching every shot size, time of day and most settings

Used by the tests and benchmarks/bench_previz.py.
"""

from __future__ import annotations

from autokose.bible import builtin_bible
from autokose.story import Blocking, Scene, Story

CAST = ("aldar", "bai", "baibishe", "servant1", "servant2", "merchant", "mullah", "shaitan", "donkey", "horse")


def scene(chars: list[str], blocking: dict[str, tuple] | None = None, **fields) -> dict:
    moves = {cid: Blocking(**dict(zip(("pose", "emotion", "holds", "place"), spec)))
             for cid, spec in (blocking or {}).items()}
    return {"characters": chars, "blocking": moves, **fields}


def make_story(*scenes: dict) -> Story:
    bible = builtin_bible()
    return Story(
        title="Aldar Köse and the Bai",
        logline="Aldar Köse tricks the greedy Bai out of his fur coat.",
        characters=[bible[c] for c in CAST],
        scenes=[Scene(index=n, **s) for n, s in enumerate(scenes, 1)],
    )


def board_story() -> Story:
    return make_story(
        scene(["aldar", "donkey"], {"aldar": ("ride", "happy")}, shot="establishing", time="dawn",
              setting="steppe", action="Aldar rides his donkey across the steppe."),
        scene(["aldar", "bai", "servant1", "servant2"],
              {"aldar": ("bow",), "bai": ("sit", "angry"), "servant1": ("stand", "neutral", None, "behind"),
               "servant2": ("stand", "neutral", None, "behind")},
              shot="wide", setting="the Bai's yurt", props=["carpet"],
              action="Алдар входит в юрту Бая. Слуги стоят позади Бая."),
        scene(["aldar", "merchant"], {"aldar": ("hold", "sly", "golden egg"), "merchant": ("point", "surprise")},
              shot="medium", setting="bazaar", props=["golden egg"]),
        scene(["aldar", "merchant"], {"aldar": ("talk", "sly")}, shot="close_up", setting="bazaar"),
        scene(["bai", "aldar", "baibishe"], {"aldar": ("argue", "laugh"), "bai": ("stand", "surprise")},
              shot="over_the_shoulder", setting="courtyard", time="dusk"),
        scene(["aldar"], {"aldar": ("hold", "neutral", "golden egg")}, shot="insert", setting="yurt", time="night",
              props=["golden egg"]),
        scene(["mullah", "shaitan", "horse", "aldar"],
              {"aldar": ("ride", "laugh"), "mullah": ("argue", "angry"), "shaitan": ("laugh",)},
              shot="wide", setting="road", time="night", props=["cauldron", "sack"]),
        scene(["aldar", "donkey", "bai"], {"aldar": ("walk", "laugh", "fur coat"), "bai": ("run", "angry", "whip")},
              shot="wide", setting="mountains", angle="low"),
    )
