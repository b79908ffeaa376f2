"""The synthetic world the demo model learns: flat coloured shapes on a plain background.

Every scene is a pure function of an integer seed, so a dataset is a range of seeds, and held-out
data is a disjoint range. Captions, drawing requests and question/answer pairs are derived from the
scene, never written by hand, so the text always says what the pixels show.

Held out from training altogether: the colour x shape pairs in HELD_OUT. The evaluation draws and
asks about exactly those pairs, so a right answer there is composition, not recall.
"""
from __future__ import annotations

import colorsys
import math
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SIZE = 64  # the demo's image side (pixels); 8 x 8 tokens at the VQ-VAE's downsample of 8

COLOURS: dict[str, tuple[int, int, int]] = {
    'red': (220, 40, 40),
    'green': (40, 170, 60),
    'blue': (40, 80, 220),
    'yellow': (240, 210, 40),
    'purple': (150, 60, 190),
    'orange': (250, 140, 30),
}
BACKGROUNDS: dict[str, tuple[int, int, int]] = {
    'white': (245, 245, 245),
    'black': (20, 20, 20),
    'gray': (128, 128, 128),
}
SHAPES = ('circle', 'square', 'triangle', 'diamond')
SIZES = {'small': 11, 'big': 18}  # half the shape's extent, in pixels
POSITIONS = {
    'center': (32, 32),
    'left': (17, 32),
    'right': (47, 32),
    'top': (32, 17),
    'bottom': (32, 47),
}
COUNT_WORDS = {1: 'one', 2: 'two', 3: 'three'}
PLURAL = {'circle': 'circles', 'square': 'squares', 'triangle': 'triangles', 'diamond': 'diamonds'}

# One held-out colour per shape: each shape and each of these colours is seen, never together.
HELD_OUT = frozenset({('red', 'triangle'), ('green', 'circle'), ('blue', 'diamond'), ('yellow', 'square')})
TRAIN_PAIRS = [(c, s) for c in COLOURS for s in SHAPES if (c, s) not in HELD_OUT]
HELD_OUT_PAIRS = sorted(HELD_OUT)

# More colours, named only in drawing requests (README, "tried and not kept": many colours per
# shape): with them each shape is drawn in many colours rather than five, so that what a request's
# colour does to a drawing is learned apart from any one shape. Each is at least 80 (RGB distance)
# from every named colour and background; EXTRA_PAIRS keeps each shape from the ones that could pass
# for the colour held out with it.
EXTRA_COLOURS: dict[str, tuple[int, int, int]] = {  # words chosen to fit the tokenizer's 30 spare ids
    'pink': (250, 120, 190),
    'sky': (120, 180, 250),
    'tan': (210, 180, 140),
    'plum': (100, 30, 80),
    'teal': (0, 120, 120),
    'cyan': (40, 200, 220),
    'lime': (160, 230, 40),
    'mint': (150, 240, 180),
    'navy': (30, 30, 120),
    'olive': (120, 120, 0),
}
PALETTE = {**COLOURS, **EXTRA_COLOURS}  # every colour word's paint


@dataclass(frozen=True)
class Item:
    shape: str
    colour: str
    centre: tuple[int, int]
    half: int
    rgb: tuple[int, int, int] | None = None  # an unnamed colour (colour is then UNNAMED)


@dataclass(frozen=True)
class Scene:
    background: str
    items: tuple[Item, ...]
    size_word: str | None  # set for single-shape scenes
    position_word: str | None

    @property
    def shape(self) -> str:
        return self.items[0].shape

    @property
    def colour(self) -> str:
        return self.items[0].colour

    @property
    def count(self) -> int:
        return len(self.items)


def _polygon(shape: str, cx: float, cy: float, h: float) -> list[tuple[float, float]]:
    if shape == 'square':
        return [(cx - h, cy - h), (cx + h, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    if shape == 'triangle':
        return [(cx, cy - h), (cx + h, cy + h), (cx - h, cy + h)]
    if shape == 'diamond':
        return [(cx, cy - h), (cx + h, cy), (cx, cy + h), (cx - h, cy)]
    raise ValueError(shape)


def render(scene: Scene) -> np.ndarray:
    """The scene as uint8 [SIZE, SIZE, 3], drawn at 4x and box-filtered down for clean edges."""
    k = 4
    img = Image.new('RGB', (SIZE * k, SIZE * k), BACKGROUNDS[scene.background])
    draw = ImageDraw.Draw(img)
    for it in scene.items:
        cx, cy, h = (it.centre[0] + 0.5) * k, (it.centre[1] + 0.5) * k, it.half * k
        fill = it.rgb or PALETTE[it.colour]
        if it.shape == 'circle':
            draw.ellipse([cx - h, cy - h, cx + h, cy + h], fill=fill)
        else:
            draw.polygon(_polygon(it.shape, cx, cy, h), fill=fill)
    return np.asarray(img.resize((SIZE, SIZE), Image.BOX), dtype=np.uint8)


def scene_from_seed(seed: int, pairs: list[tuple[str, str]], multi: bool) -> Scene:
    """One scene. multi allows two or three copies of the shape (for counting questions)."""
    rng = random.Random(seed * 7919 + 17)
    colour, shape = pairs[rng.randrange(len(pairs))]
    background = rng.choice(list(BACKGROUNDS))
    count = rng.choice((1, 1, 2, 3)) if multi else 1
    if count == 1:
        size_word = rng.choice(list(SIZES))
        position_word = rng.choice(list(POSITIONS))
        x, y = POSITIONS[position_word]
        jitter = 2
        centre = (x + rng.randint(-jitter, jitter), y + rng.randint(-jitter, jitter))
        return Scene(background, (Item(shape, colour, centre, SIZES[size_word]),), size_word, position_word)
    half = 8
    items: list[Item] = []
    while len(items) < count:
        c = (rng.randint(half + 2, SIZE - half - 3), rng.randint(half + 2, SIZE - half - 3))
        if all(math.hypot(c[0] - o.centre[0], c[1] - o.centre[1]) > 2 * half + 4 for o in items):
            items.append(Item(shape, colour, c, half))
    return Scene(background, tuple(items), None, None)


def describe(scene: Scene) -> str:
    if scene.count == 1:
        return f'a {scene.size_word} {scene.colour} {scene.shape} on the {scene.position_word}' \
            if scene.position_word != 'center' else f'a {scene.size_word} {scene.colour} {scene.shape} in the center'
    return f'{COUNT_WORDS[scene.count]} {scene.colour} {PLURAL[scene.shape]}'


_DRAW_TEMPLATES = (
    '{d}',
    'draw {d}',
    'please draw {d}',
    'draw a picture of {d}',
    'generate an image of {d}',
    'make a drawing of {d}',
)


def drawing_request(scene: Scene, rng: random.Random, names: str = 'both') -> str:
    """A request that names the colour and shape, and sometimes the size, place and background.
    names='colour' asks for "a {colour} shape", names='shape' for "a {shape}" (any colour)."""
    parts = []
    if rng.random() < 0.5:
        parts.append(scene.size_word or 'big')
    if names != 'shape':
        parts.append(scene.colour)
    parts.append(scene.shape if names != 'colour' else 'shape')
    d = 'a ' + ' '.join(parts)
    if scene.position_word and rng.random() < 0.5:
        d += ' in the center' if scene.position_word == 'center' else f' on the {scene.position_word}'
    if rng.random() < 0.4:
        d += f' on a {scene.background} background'
    return rng.choice(_DRAW_TEMPLATES).format(d=d)


def drawing_scene(seed: int, pairs: list[tuple[str, str]], names: str = 'both') -> tuple[Scene, str]:
    """A single-shape scene and a request it satisfies; what the request leaves out is free."""
    scene = scene_from_seed(seed, pairs, multi=False)
    return scene, drawing_request(scene, random.Random(seed * 31 + 5), names)


QUESTIONS = {
    'colour': ('what colour is the shape?', 'what color is it?', 'which colour is the shape?'),
    'shape': ('what shape is this?', 'what shape do you see?', 'which shape is it?'),
    'count': ('how many shapes are there?', 'how many shapes do you see?'),
    'position': ('where is the shape?', 'where is it?'),
    'background': ('what colour is the background?',),
    'describe': ('describe the image.', 'what is in the picture?'),
}


def answer(scene: Scene, kind: str) -> str:
    if kind == 'colour':
        return scene.colour
    if kind == 'shape':
        return scene.shape
    if kind == 'count':
        return COUNT_WORDS[scene.count]
    if kind == 'position':
        return scene.position_word or ''
    if kind == 'background':
        return scene.background
    if kind == 'describe':
        return describe(scene)
    raise ValueError(kind)


def question_kinds(scene: Scene) -> list[str]:
    kinds = ['colour', 'shape', 'count', 'background', 'describe']
    if scene.count == 1:
        kinds.append('position')
    return kinds


def qa_from_seed(seed: int, pairs: list[tuple[str, str]],
                 weights: dict[str, int] | None = None) -> tuple[Scene, str, str, str]:
    """(scene, kind, question, answer) for an understanding sample; weights repeats kinds."""
    scene = scene_from_seed(seed, pairs, multi=True)
    rng = random.Random(seed * 13 + 3)
    kinds = [k for k in question_kinds(scene) for _ in range((weights or {}).get(k, 1))]
    kind = rng.choice(kinds)
    return scene, kind, rng.choice(QUESTIONS[kind]), answer(scene, kind)


UNNAMED = 'unnamed'
UNNAMED_MIN_DISTANCE = 100  # RGB distance from every named colour
UNNAMED_BACKGROUND_DISTANCE = 60  # and from every background, so the shape stays visible
UNNAMED_HELD_OUT_HUE = 45  # degrees of hue kept away from the colour held out with the shape


def _hue(rgb: tuple[int, int, int]) -> tuple[float, float]:
    h, s, _v = colorsys.rgb_to_hsv(*(x / 255 for x in rgb))
    return h * 360, s


def unnamed_colour(rng: random.Random, shape: str) -> tuple[int, int, int]:
    """A colour for `shape` far from all six named ones (teal, pink, olive, navy...) and, when it
    is saturated enough to have a hue, of a hue well away from the colour held out with `shape`
    (no pale-yellow squares, no pink triangles): nothing that could pass for a held-out pair."""
    while True:
        c = (rng.randrange(256), rng.randrange(256), rng.randrange(256))
        if min(math.dist(c, p) for p in COLOURS.values()) < UNNAMED_MIN_DISTANCE or \
                min(math.dist(c, b) for b in BACKGROUNDS.values()) < UNNAMED_BACKGROUND_DISTANCE:
            continue
        if _near_held_out_hue(c, shape):
            continue
        return c


def _near_held_out_hue(rgb: tuple[int, int, int], shape: str) -> bool:
    hue, sat = _hue(rgb)
    return sat >= 0.2 and any(abs((hue - _hue(COLOURS[c])[0] + 180) % 360 - 180) < UNNAMED_HELD_OUT_HUE
                              for c, s in HELD_OUT if s == shape)


def _nearest_named(rgb: tuple[int, int, int]) -> str:
    return min(COLOURS, key=lambda c: math.dist(rgb, COLOURS[c]))


# The judge names a drawing's colour as the nearest of the six: a teal circle would pass for a
# green one, so besides the hue rule no shape comes in a colour whose nearest named one is held out
# with it.
EXTRA_PAIRS = [(c, s) for c, rgb in EXTRA_COLOURS.items() for s in SHAPES
               if not _near_held_out_hue(rgb, s) and (_nearest_named(rgb), s) not in HELD_OUT]


def unnamed_qa_from_seed(seed: int, weights: dict[str, int] | None = None) -> tuple[Scene, str, str, str]:
    """A question about shapes painted in an unnamed colour: only shape, count and place are asked.

    These teach the vision tower to see a shape whatever its colour, which is what naming the shape
    of a held-out pair needs, without showing a held-out pair (or any named pair)."""
    rng = random.Random(seed * 104729 + 11)
    base = scene_from_seed(seed, [(next(iter(COLOURS)), s) for s in SHAPES], multi=True)
    rgb = unnamed_colour(rng, base.shape)
    scene = Scene(base.background, tuple(Item(it.shape, UNNAMED, it.centre, it.half, rgb) for it in base.items),
                  base.size_word, base.position_word)
    kinds = [k for k in question_kinds(scene) if k in ('shape', 'count', 'position')]
    kinds = [k for k in kinds for _ in range((weights or {}).get(k, 1))]
    kind = rng.choice(kinds)
    return scene, kind, rng.choice(QUESTIONS[kind]), answer(scene, kind)


def vocabulary() -> list[str]:
    """Every word the world's text uses (the tokenizer gives each one token)."""
    words: set[str] = set()
    words.update(COLOURS, BACKGROUNDS, SHAPES, SIZES, POSITIONS, COUNT_WORDS.values(), PLURAL.values())
    texts = list(_DRAW_TEMPLATES) + [q for qs in QUESTIONS.values() for q in qs]
    texts += ['a in the center on the on a background', 'USER ASSISTANT color colour image picture']
    for t in texts:
        for w in t.replace('{d}', ' ').replace('?', ' ').replace('.', ' ').replace(':', ' ').split():
            words.add(w)
    return sorted(words)
