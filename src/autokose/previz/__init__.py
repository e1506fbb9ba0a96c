"""Previz drawing kit: puppets, animals, props and backgrounds as flat-vector SVG.

`autokose.render.previz.PrevizRenderer` assembles these into frames; `autokose.vocabulary`
says which setting and prop a story's words are drawn as. Every drawing is a pure
function of the layout and the character bible, so the same board gives byte-identical SVG.

    designs      one puppet design per character, read from the bible
    heads        hats, faces, beards, expressions (canonical head space)
    puppets      human figures drawn along the OpenPose keypoints
    animals      side view: donkey, horse, camel, wolf, dog, ram, goat, eagle; a neutral stand-in for others
    props        golden egg, kazan, fur coat, patched chapan, saddle, coins, purse, kese, whip, staff, sack, carpet
    backgrounds  steppe, road, mountains, aul, river, bazaar, courtyard, yurt interior × time of day
    demo         a hand-built 8-scene board for tests and benchmarks
    svg          small SVG and geometry helpers
"""
