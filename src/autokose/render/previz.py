"""The previz renderer: clean vector storyboard frames, no weights, fully deterministic.

Each frame is one SVG (background, props, puppets along the staged pose keypoints) that
resvg rasterises to PNG. Frames carry no text (captions live in the board exports), so the
pixels do not depend on installed fonts.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import resvg_py
from PIL import Image

from autokose.errors import InputError
from autokose.previz.animals import DRAWINGS as ANIMAL_DRAWINGS, draw_animal
from autokose.previz.backgrounds import draw_background
from autokose.previz.designs import PuppetDesign, design_for
from autokose.previz.props import draw_prop
from autokose.previz.puppets import draw_human, ink_width
from autokose.previz.svg import tag
from autokose.render import Frame, RenderSettings
from autokose.staging import Figure, Layout
from autokose.story import Story

log = logging.getLogger("autokose")


class PrevizRenderer:
    name = "previz"

    def __init__(self, settings: RenderSettings):
        self.settings = settings
        self._warned: set[str] = set()  # kinds without a drawing, said once per renderer (one run)

    def render(self, story: Story, layouts: list[Layout], only: list[int],
               seeds: dict[int, int] | None = None) -> Iterator[Frame]:
        by_index = {layout.index: layout for layout in layouts}
        scenes = {scene.index: scene for scene in story.scenes}
        designs = {c.id: design_for(c) for c in story.characters}
        width, height = self.settings.width, self.settings.height
        for index in only:
            if index not in by_index or index not in scenes:
                raise InputError(f"previz: no layout for scene {index}")
            seed = (seeds or {}).get(index, scenes[index].seed)
            layout = by_index[index]
            if abs(layout.aspect - width / height) > 1e-3:  # staging is the pipeline's (layouts.json), not ours
                raise InputError(f"previz: scene {index} was staged for frames of aspect {layout.aspect:.3f}, "
                                 f"not {width}x{height}")
            self._warn_undrawn(layout)
            svg = scene_svg(layout, designs, width, height, seed)
            yield Frame(index=index, image=rasterise(svg), seed=seed, svg=svg,
                        meta={"renderer": self.name, "width": width, "height": height})


    def _warn_undrawn(self, layout: Layout) -> None:
        """The kit draws an animal kind it lacks as a grey stand-in: say so, once per kind and run."""
        for fig in layout.figures:
            if not fig.keypoints and fig.kind not in ANIMAL_DRAWINGS and fig.kind not in self._warned:
                self._warned.add(fig.kind)
                log.warning("previz has no drawing for kind %r: drawn as a neutral animal silhouette "
                            "(drawn kinds: %s)", fig.kind, ", ".join(sorted(ANIMAL_DRAWINGS)))


def scene_svg(layout: Layout, designs: dict[str, PuppetDesign], width: int, height: int, seed: int) -> str:
    """One frame as SVG text: background, loose props, then figures back to front."""
    parts = [draw_background(layout, width, height, seed)]
    loose = [p for p in layout.props if p.holder is None]
    held = {f.id: [p for p in layout.props if p.holder == f.id] for f in layout.figures}
    front_ink = ink_width(max((f.height for f in layout.figures), default=0.5) * height)
    carpets = [p for p in loose if p.kind == "carpet"]
    others = [p for p in loose if p.kind != "carpet"]
    parts += [draw_prop(p, width, height, front_ink) for p in carpets]
    placed_loose = False
    for figure in layout.figures:
        if not placed_loose and not figure.behind:
            parts += [draw_prop(p, width, height, front_ink) for p in others]
            placed_loose = True
        if not _in_frame(figure):
            continue
        parts.append(_draw_figure(figure, designs, width, height, held.get(figure.id, [])))
    if not placed_loose:
        parts += [draw_prop(p, width, height, front_ink) for p in others]
    if not any(_in_frame(f) for f in layout.figures):  # an insert with nobody holding the prop
        parts += [draw_prop(p, width, height, front_ink) for p in layout.props if p.holder is not None]
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" data-scene="{layout.index}">' + "".join(parts) + "</svg>\n")


def _draw_figure(figure: Figure, designs: dict[str, PuppetDesign], width: int, height: int, held) -> str:
    design = designs.get(figure.id) or PuppetDesign()
    if not figure.keypoints:
        return draw_animal(figure, design, width, height, ink_width(figure.height * height))
    return tag(draw_human(figure, design, width, height, held), data_kind=figure.kind)  # tools find figures by kind


def _in_frame(figure: Figure) -> bool:
    x0, y0, x1, y1 = figure.box
    return x1 > 0 and x0 < 1 and y1 > 0 and y0 < 1


def rasterise(svg: str) -> Image.Image:
    """SVG text → RGB image (resvg; system fonts are never loaded: frames have no text)."""
    png = resvg_py.svg_to_bytes(svg_string=svg, skip_system_fonts=True)
    with Image.open(io.BytesIO(bytes(png))) as image:
        return image.convert("RGB")
