"""The toy world: a deterministic procedural renderer standing in for AFHQ and Oxford-IIIT Pet.

Each image shows one animal-like object (body, head, ears, tail, fur pattern) on a cluttered
background. Coarse classes (cat/dog/wild, the AFHQ analogue) differ in ear shape and body
build; fine classes (breeds, the Oxford-IIIT Pet analogue) differ in fur colour and pattern
inside their coarse class, so breed recognition needs finer features than species.
Natural variation covers object scale, position, pose (flip, tilt), brightness, background
clutter and occlusion by a person-like shape; every image's draw is recorded so the audits
have ground truth (true object scale, brightness factor, occlusion).

The breeds are told apart by colour and pattern that survive a small ViT's mean-pooled
embedding: each breed's fur and accent colours differ from the others of its coarse class,
patterns cover a large share of the body, and scenes are muted grey-tinted gradients with
at most two distractor shapes (with up to seven saturated ones and the earlier palette,
the demo's real-pretrained backbone sat at chance on the Pet task; README "What the demo is").

The same renderer, with narrower :class:`WorldParams`, is the demo's biased synthetic
generator (``synreal.generate`` backend ``toy``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SUPERSAMPLE = 3
#: Largest per-channel offset of a scene colour from its grey level (see _scene_colour).
SCENE_TINT = 30


@dataclass(frozen=True)
class Breed:
    """The look of one fine class: fur colours, fur pattern, and its coarse class."""

    name: str
    coarse: str
    fur: tuple[int, int, int]
    accent: tuple[int, int, int]
    pattern: str  # plain | stripes | spots | patches | mask


COARSE_CLASSES: tuple[str, ...] = ("cat", "dog", "wild")

#: Pet-like breeds (capitalised cats, lower-case dogs, as in Oxford-IIIT Pet file names).
BREEDS: tuple[Breed, ...] = (
    Breed("Abyssinian", "cat", (190, 105, 45), (120, 65, 30), "plain"),
    Breed("Bengal", "cat", (215, 165, 70), (45, 30, 20), "spots"),
    Breed("Bombay", "cat", (32, 30, 32), (70, 65, 60), "plain"),
    Breed("Persian", "cat", (200, 200, 208), (120, 118, 130), "patches"),
    Breed("Siamese", "cat", (236, 226, 210), (75, 50, 38), "mask"),
    Breed("British_Shorthair", "cat", (110, 120, 148), (72, 78, 100), "stripes"),
    Breed("beagle", "dog", (220, 170, 105), (40, 30, 25), "patches"),
    Breed("boxer", "dog", (140, 80, 45), (245, 240, 230), "mask"),
    Breed("pug", "dog", (215, 190, 140), (35, 30, 28), "mask"),
    Breed("samoyed", "dog", (246, 246, 240), (222, 222, 214), "plain"),
    Breed("shiba_inu", "dog", (215, 110, 35), (245, 235, 215), "patches"),
    Breed("german_shorthaired", "dog", (100, 62, 48), (235, 230, 225), "spots"),
)

#: Wild species: only used by the coarse (AFHQ-like) dataset.
WILD: tuple[Breed, ...] = (
    Breed("tiger", "wild", (225, 130, 40), (30, 25, 20), "stripes"),
    Breed("lion", "wild", (200, 160, 90), (150, 100, 50), "plain"),
    Breed("wolf", "wild", (130, 130, 125), (200, 200, 195), "mask"),
    Breed("leopard", "wild", (215, 175, 95), (45, 35, 25), "spots"),
)

ALL_BREEDS = {b.name: b for b in BREEDS + WILD}


def breeds_of(coarse: str) -> tuple[Breed, ...]:
    """All fine classes (breeds or wild species) under one coarse class."""
    return tuple(b for b in BREEDS + WILD if b.coarse == coarse)


@dataclass(frozen=True)
class WorldParams:
    """Ranges of natural variation. The real toy world is wide; the toy generator is narrow.

    Attributes:
        scale: (min, max) object width as a fraction of the image side.
        brightness: (min, max) global brightness multiplier.
        occlusion_prob: chance that a person-like shape covers part of the object.
        clutter: (min, max) number of background distractor shapes.
        tilt_degrees: maximum absolute in-plane rotation of the object.
    """

    scale: tuple[float, float] = (0.3, 0.95)
    brightness: tuple[float, float] = (0.35, 1.45)
    occlusion_prob: float = 0.25
    clutter: tuple[int, int] = (0, 2)
    tilt_degrees: float = 20.0


@dataclass
class Draw:
    """What was rendered: the ground truth the audits compare their estimates against.

    ``background_top`` / ``background_bottom`` are the background gradient's end colours
    before the brightness multiplier: the scene a toy image variation keeps.
    """

    breed: str
    coarse: str
    scale: float
    object_area_ratio: float
    brightness: float
    occluded: bool
    bbox: tuple[float, float, float, float] = field(default=(0.0, 0.0, 0.0, 0.0))
    person_bbox: tuple[float, float, float, float] | None = None
    background_top: tuple[int, int, int] | None = None
    background_bottom: tuple[int, int, int] | None = None

    def as_row(self) -> dict:
        """Flatten into a Parquet-friendly row."""
        row = asdict(self)
        for key in ("bbox", "person_bbox", "background_top", "background_bottom"):
            value = getattr(self, key)
            row[key] = list(value) if value is not None else None
        return row


def _jitter(colour: tuple[int, int, int], rng: np.random.Generator, amount: int = 18) -> tuple:
    return tuple(int(np.clip(c + rng.integers(-amount, amount + 1), 0, 255)) for c in colour)


def _scene_colour(rng: np.random.Generator, low: int, high: int) -> np.ndarray:
    """A muted scene colour: a grey level in [low, high) tinted by up to SCENE_TINT a channel.

    Scenes are less saturated than fur, as indoor and outdoor photo backgrounds mostly are,
    so the animal's colours, not the scene's, dominate an image's mean.
    """
    grey = rng.integers(low, high)
    return np.clip(grey + rng.integers(-SCENE_TINT, SCENE_TINT + 1, size=3), 0, 255)


def _background(draw: ImageDraw.ImageDraw, size: int, rng: np.random.Generator,
                params: WorldParams, gradient: tuple | None = None) -> tuple[tuple, tuple]:
    """A vertical colour gradient (drawn at random unless given) plus clutter; the gradient."""
    if gradient is None:
        top, bottom = _scene_colour(rng, 70, 200), _scene_colour(rng, 50, 180)
    else:
        top, bottom = gradient
    top, bottom = tuple(int(v) for v in top), tuple(int(v) for v in bottom)
    for y in range(size):
        t = y / max(size - 1, 1)
        colour = tuple(int(a * (1 - t) + b * t) for a, b in zip(top, bottom, strict=True))
        draw.line([(0, y), (size, y)], fill=colour)
    for _ in range(int(rng.integers(params.clutter[0], params.clutter[1] + 1))):
        x, y = rng.uniform(0, size, 2)
        r = rng.uniform(0.03, 0.14) * size
        colour = tuple(int(v) for v in _scene_colour(rng, 30, 230))
        if rng.random() < 0.5:
            draw.ellipse([x - r, y - r, x + r, y + r], fill=colour)
        else:
            draw.rectangle([x - r, y - r * 0.6, x + r, y + r * 0.6], fill=colour)
    return top, bottom


def _pattern(draw: ImageDraw.ImageDraw, breed: Breed, box: tuple, rng: np.random.Generator,
             unit: float) -> None:
    x0, y0, x1, y1 = box
    accent = _jitter(breed.accent, rng, 10)
    if breed.pattern == "stripes":
        for i in range(5):
            x = x0 + (i + 0.5) * (x1 - x0) / 5
            draw.line([(x, y0 + unit), (x + unit, y1 - unit)], fill=accent,
                      width=max(1, int(1.6 * unit)))
    elif breed.pattern == "spots":
        for _ in range(7):
            cx, cy = rng.uniform(x0 + unit, x1 - unit), rng.uniform(y0 + unit, y1 - unit)
            r = unit * rng.uniform(1.1, 1.7)
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=accent)
    elif breed.pattern == "patches":
        cx = rng.uniform(x0, x1)
        draw.ellipse([cx - 4 * unit, y0, cx + 4 * unit, y0 + (y1 - y0) * 0.8], fill=accent)


def _animal(draw: ImageDraw.ImageDraw, breed: Breed, cx: float, cy: float, width: float,
            facing: int, rng: np.random.Generator) -> tuple[float, float, float, float]:
    """Draw body, tail, head, ears and pattern; return the object's bounding box."""
    build = {"cat": 0.55, "dog": 0.62, "wild": 0.7}[breed.coarse]
    body_w, body_h = width * 0.72, width * 0.72 * build * 0.75
    unit = width / 20
    fur = _jitter(breed.fur, rng)
    bx0, by0 = cx - body_w / 2 - facing * width * 0.1, cy - body_h / 2
    body = (bx0, by0, bx0 + body_w, by0 + body_h)
    tail_x = body[0] if facing > 0 else body[2]
    tail_end = (tail_x - facing * width * 0.18, by0 - body_h * 0.5)
    draw.line([(tail_x, by0 + body_h * 0.3), tail_end], fill=fur, width=max(1, int(1.6 * unit)))
    leg_w = max(1, int(1.8 * unit))
    for lx in (body[0] + body_w * 0.15, body[2] - body_w * 0.15):
        draw.line([(lx, body[3] - unit), (lx, body[3] + body_h * 0.45)], fill=fur, width=leg_w)
    draw.ellipse(body, fill=fur)
    _pattern(draw, breed, body, rng, unit)
    head_r = width * {"cat": 0.16, "dog": 0.18, "wild": 0.2}[breed.coarse]
    hx = body[2] - head_r * 0.4 if facing > 0 else body[0] + head_r * 0.4
    hy = by0 - head_r * 0.2
    for side in (-1, 1):
        ex = hx + side * head_r * 0.6
        if breed.coarse == "cat":
            ear = [(ex - head_r * 0.35, hy - head_r * 0.6), (ex + head_r * 0.35, hy - head_r * 0.6),
                   (ex, hy - head_r * 1.55)]
            draw.polygon(ear, fill=fur)
        elif breed.coarse == "dog":
            draw.ellipse([ex - head_r * 0.3, hy - head_r * 0.4, ex + head_r * 0.3,
                          hy + head_r * 0.9], fill=_jitter(breed.accent, rng, 8))
        else:
            draw.ellipse([ex - head_r * 0.35, hy - head_r * 1.25, ex + head_r * 0.35,
                          hy - head_r * 0.55], fill=fur)
    draw.ellipse([hx - head_r, hy - head_r, hx + head_r, hy + head_r], fill=fur)
    if breed.pattern == "mask":
        draw.ellipse([hx - head_r * 0.7, hy - head_r * 0.3, hx + head_r * 0.7, hy + head_r],
                     fill=_jitter(breed.accent, rng, 8))
    snout = head_r * (0.35 if breed.coarse == "cat" else 0.6)
    draw.ellipse([hx + facing * head_r * 0.6 - snout * 0.6, hy, hx + facing * head_r * 0.6
                  + snout * 0.6, hy + snout * 0.8], fill=_jitter(breed.accent, rng, 8))
    for side in (-1, 1):
        ex = hx + side * head_r * 0.35
        draw.ellipse([ex - unit * 0.6, hy - head_r * 0.35, ex + unit * 0.6, hy - head_r * 0.05],
                     fill=(10, 10, 10))
    xs = [body[0], body[2], hx - head_r, hx + head_r, tail_end[0]]
    ys = [hy - head_r * 1.55, body[3] + body_h * 0.45, tail_end[1]]
    return (min(xs), min(ys), max(xs), max(ys))


def _person(draw: ImageDraw.ImageDraw, bbox: tuple, size: int,
            rng: np.random.Generator) -> tuple[float, float, float, float]:
    """Draw a person-like occluder (head + torso + arm) overlapping the object's box."""
    x0, y0, x1, y1 = bbox
    px = rng.uniform(x0 + 0.1 * (x1 - x0), x1 - 0.1 * (x1 - x0))
    width = (x1 - x0) * rng.uniform(0.3, 0.45)
    clothes = tuple(int(v) for v in rng.integers(20, 240, size=3))
    skin = _jitter((205, 160, 130), rng, 25)
    top = rng.uniform(y0 - 0.3 * (y1 - y0), y0 + 0.2 * (y1 - y0))
    head_r = width * 0.35
    draw.ellipse([px - head_r, top, px + head_r, top + 2 * head_r], fill=skin)
    torso = [px - width / 2, top + 2 * head_r, px + width / 2, size * 1.2]
    draw.rounded_rectangle(torso, radius=width * 0.3, fill=clothes)
    arm_y = top + 2 * head_r + width * 0.4
    draw.line([(px, arm_y), (px - width * 1.1, arm_y + width * 0.5)], fill=skin,
              width=max(1, int(width * 0.2)))
    return (px - width * 1.1, top, px + width / 2, float(size))


def render(breed: Breed, size: int, rng: np.random.Generator,
           params: WorldParams = WorldParams(),  # noqa: B008
           background: tuple | None = None) -> tuple[Image.Image, Draw]:
    """Render one RGB image of ``breed`` at ``size`` x ``size`` px; return it and its draw.

    ``background`` is a (top, bottom) RGB gradient to paint instead of drawing one (the toy
    image variations keep their source's); everything else comes from ``rng``.
    """
    big = size * SUPERSAMPLE
    image = Image.new("RGB", (big, big))
    draw = ImageDraw.Draw(image)
    top, bottom = _background(draw, big, rng, params, background)
    scale = float(rng.uniform(*params.scale))
    width = scale * big
    margin = width * 0.35
    cx = rng.uniform(min(margin, big / 2), max(big - margin, big / 2))
    cy = rng.uniform(big * 0.45, big * 0.62)
    facing = 1 if rng.random() < 0.5 else -1
    layer = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    bbox = _animal(ImageDraw.Draw(layer), breed, cx, cy, width, facing, rng)
    tilt = float(rng.uniform(-params.tilt_degrees, params.tilt_degrees))
    layer = layer.rotate(tilt, resample=Image.BILINEAR, center=(cx, cy))
    alpha = np.asarray(layer.getchannel("A")) > 0
    image.paste(layer, (0, 0), layer)
    ys, xs = np.nonzero(alpha)
    if len(xs):
        bbox = (float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1))
    bbox = tuple(float(np.clip(v, 0, big)) for v in bbox)
    occluded = bool(rng.random() < params.occlusion_prob)
    person_bbox = _person(draw, bbox, big, rng) if occluded else None
    brightness = float(rng.uniform(*params.brightness))
    pixels = np.asarray(image, dtype=np.float32) * brightness
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    image = image.filter(ImageFilter.GaussianBlur(0.5)).resize((size, size), Image.LANCZOS)
    area_ratio = float(alpha.sum()) / (big * big)
    box_area = (bbox[2] - bbox[0]) * (bbox[3] - bbox[1]) / (big * big)
    scale_px = tuple(v / SUPERSAMPLE for v in bbox)
    person = tuple(v / SUPERSAMPLE for v in person_bbox) if person_bbox else None
    return image, Draw(breed.name, breed.coarse, box_area, area_ratio, brightness, occluded,
                       scale_px, person, top, bottom)


def image_rng(seed: int, *stream: int) -> np.random.Generator:
    """An independent RNG for one image, derived from the study seed and the image's index."""
    return np.random.default_rng(np.random.SeedSequence([seed, *stream]))

