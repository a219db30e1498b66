"""Every literal of the demo collection: defaults, file layout, trait tables, palettes, step sizes.

The imaginary organisms are drawn from a few body plans. A plan is fixed per kingdom, its form per
phylum or class and its style one rank lower (named here where the real group suggests one, drawn
from the taxon key otherwise); every continuous trait drifts by a step that shrinks with depth.
"""
from __future__ import annotations

from taxonomy import Rank

# --- the command line and the collection ------------------------------------------------------------
DEFAULT_SPECIES = 300
DEFAULT_PER_SPECIES = 10
DEFAULT_SIZE = 128
DEFAULT_SEED = 0
MIN_SIZE = 32
MAX_SIZE = 1024

CATALOG_NAME = "catalog.csv"
IMAGES_DIR = "images"
IMAGE_SUFFIX = ".jpg"
JPEG_QUALITY = 90  # fixed, with no optimisation pass, so the bytes are the same on every run
SOURCE = "tol-demo"
LICENSE = "CC0-1.0"  # the pictures are generated; only the names are NCBI's

SPLIT_TRAIN = "train"
SPLIT_VAL = "val"
SPLIT_UNSEEN = "unseen"
VAL_FRACTION = 0.2  # of the images of each species seen in training
UNSEEN_FRACTION = 0.1  # of the species: never shown in training, their genus is

SPECIES_DATA = "data/species.json"  # relative to the demo package
FIRST_PASS_PER_GENUS = 2  # species taken per genus before any genus gets a third
LATER_PASS_PER_GENUS = 2

# --- the contact sheet ----------------------------------------------------------------------------
SHEET_FAMILIES = 18
SHEET_FAMILIES_PER_CLASS = 2  # two rows per class: cousins side by side, and classes set apart
SHEET_PER_ROW = 6
SHEET_THUMB = 96
SHEET_LABEL_WIDTH = 230
SHEET_CAPTION_HEIGHT = 26
SHEET_MARGIN = 8
SHEET_BACKGROUND = (250, 249, 245)
SHEET_INK = (40, 40, 40)
SHEET_MUTED = (120, 120, 120)
SHEET_RULE = (222, 220, 214)
SHEET_COLOURS = 256  # the PNG is palettised to stay small enough to commit
SHEET_FONT = "DejaVuSans.ttf"  # shipped with matplotlib; Pillow's default font otherwise
SHEET_FONT_ITALIC = "DejaVuSans-Oblique.ttf"
SHEET_FONT_BOLD = "DejaVuSans-Bold.ttf"

# --- traits ---------------------------------------------------------------------------------------
# Continuous genes, each in [0, 1]; `hue*` genes wrap around, the others reflect at the ends.
GENES: tuple[str, ...] = (
    "length", "width", "head", "limbs", "limb_length", "tail", "eye", "segments", "curl",
    "hue", "saturation", "value", "hue2", "saturation2", "value2", "accent_hue",
    "pattern_scale", "pattern_amount", "texture", "outline", "bg_hue", "bg_value",
)
WRAPPING_GENES = frozenset({"hue", "hue2", "accent_hue", "bg_hue"})

# Standard deviation of a child's change from its parent, by the child's rank; the kingdom draws fresh.
STEP: dict[Rank, float] = {
    Rank.PHYLUM: 0.30,
    Rank.CLASS: 0.22,
    Rank.ORDER: 0.14,
    Rank.FAMILY: 0.12,
    Rank.GENUS: 0.09,
    Rank.SPECIES: 0.07,
}
# Probability that a rank draws a new pattern or habitat rather than keeping its parent's.
PATTERN_CHANGE: dict[Rank, float] = {Rank.ORDER: 0.8, Rank.FAMILY: 0.4, Rank.GENUS: 0.15}
HABITAT_CHANGE: dict[Rank, float] = {Rank.ORDER: 0.3, Rank.FAMILY: 0.1}

PLANS: tuple[str, ...] = ("creature", "plant", "fungus")
PLAN_OF_KINGDOM: dict[str, str] = {"Animalia": "creature", "Plantae": "plant", "Fungi": "fungus"}

# Each plan: its forms, its styles per form, the rank that picks the form and the rank that picks the style.
FORMS: dict[str, tuple[str, ...]] = {
    "creature": ("vertebrate", "arthropod", "mollusc", "radial"),
    "plant": ("flowering", "conifer", "fern", "clubmoss"),
    "fungus": ("mushroom", "cup", "jelly"),
}
STYLES: dict[str, tuple[str, ...]] = {
    "vertebrate": ("fins", "wings", "legs", "crawler", "serpent"),
    "arthropod": ("winged", "spider", "clawed"),
    "mollusc": ("snail", "tentacled", "valves"),
    "radial": ("star", "bell", "spiny", "branching"),
    "flowering": ("bloom", "tree", "spike", "grass"),
    "conifer": ("spire", "broad", "bush"),
    "fern": ("frond", "whorl"),
    "clubmoss": ("shoots",),
    "mushroom": ("cap", "bracket", "funnel", "club"),
    "cup": ("cup", "lump", "morel"),
    "jelly": ("lobes", "budding"),
}
FORM_RANK: dict[str, Rank] = {"creature": Rank.PHYLUM, "plant": Rank.CLASS, "fungus": Rank.CLASS}
STYLE_RANK: dict[str, Rank] = {"creature": Rank.CLASS, "plant": Rank.ORDER, "fungus": Rank.ORDER}

# Where the real group suggests a form or style, it is named; any other group draws one from its key.
NAMED_FORMS: dict[str, str] = {
    "Chordata": "vertebrate", "Arthropoda": "arthropod", "Mollusca": "mollusc", "Cnidaria": "radial",
    "Echinodermata": "radial",
    "Magnoliopsida": "flowering", "Pinopsida": "conifer", "Gnetopsida": "conifer",
    "Polypodiopsida": "fern", "Lycopodiopsida": "clubmoss",
    "Agaricomycetes": "mushroom", "Pezizomycetes": "cup", "Sordariomycetes": "mushroom",
    "Tremellomycetes": "jelly", "Saccharomycetes": "jelly",
}
NAMED_STYLES: dict[str, str] = {
    "Aves": "wings", "Mammalia": "legs", "Actinopteri": "fins", "Chondrichthyes": "fins",
    "Amphibia": "crawler", "Lepidosauria": "serpent",
    "Insecta": "winged", "Arachnida": "spider", "Malacostraca": "clawed",
    "Gastropoda": "snail", "Cephalopoda": "tentacled", "Bivalvia": "valves",
    "Asteroidea": "star", "Echinoidea": "spiny", "Scyphozoa": "bell", "Anthozoa": "branching",
    "Fagales": "tree", "Sapindales": "tree", "Malpighiales": "tree", "Rosales": "tree", "Myrtales": "tree",
    "Poales": "grass", "Lamiales": "spike", "Fabales": "spike", "Asterales": "bloom", "Ranunculales": "bloom",
    "Pinales": "spire", "Cupressales": "bush", "Ephedrales": "bush",
    "Polypodiales": "frond", "Equisetales": "whorl",
    "Agaricales": "cap", "Polyporales": "bracket", "Cantharellales": "funnel", "Phallales": "club",
    "Xylariales": "club", "Russulales": "cap", "Pezizales": "cup", "Auriculariales": "lobes",
    "Tremellales": "lobes", "Saccharomycetales": "budding",
    # below the style's rank a named group may still set its own style
    "Tuberaceae": "lump", "Morchellaceae": "morel",
}

PATTERNS: tuple[str, ...] = ("plain", "stripes", "spots", "bands", "rings", "countershade", "speckle", "eyespots")
HABITATS: tuple[str, ...] = ("meadow", "water", "forest", "sand", "sky", "rock", "reef", "snow")
HABITATS_OF_PLAN: dict[str, tuple[str, ...]] = {  # where a drawn habitat may be: no trees under water
    "creature": HABITATS,
    "plant": ("meadow", "forest", "sand", "rock", "snow"),
    "fungus": ("meadow", "forest", "rock", "snow"),
}
NAMED_HABITATS: dict[str, str] = {
    "Aves": "sky", "Actinopteri": "water", "Chondrichthyes": "water", "Cephalopoda": "reef",
    "Anthozoa": "reef", "Scyphozoa": "water", "Asteroidea": "reef", "Echinoidea": "reef", "Bivalvia": "sand",
    "Malacostraca": "sand", "Mammalia": "forest", "Amphibia": "meadow", "Lepidosauria": "rock",
    "Insecta": "meadow", "Arachnida": "rock", "Gastropoda": "forest",
    "Magnoliopsida": "meadow", "Pinopsida": "snow", "Gnetopsida": "sand", "Polypodiopsida": "forest",
    "Lycopodiopsida": "forest", "Agaricomycetes": "forest", "Pezizomycetes": "rock",
    "Sordariomycetes": "forest", "Tremellomycetes": "forest", "Saccharomycetes": "snow",
}
# Habitat base colours, top and bottom of the gradient (RGB 0-255).
HABITAT_COLOURS: dict[str, tuple[tuple[int, int, int], tuple[int, int, int]]] = {
    "meadow": ((176, 214, 236), (118, 168, 84)),
    "water": ((96, 170, 206), (22, 70, 120)),
    "forest": ((92, 118, 78), (58, 44, 30)),
    "sand": ((236, 220, 180), (204, 172, 120)),
    "sky": ((120, 170, 232), (214, 232, 246)),
    "rock": ((168, 164, 156), (104, 98, 92)),
    "reef": ((40, 150, 170), (226, 196, 150)),
    "snow": ((208, 222, 240), (246, 248, 252)),
}
BG_HUE_SHIFT = 0.06  # how far the background hue gene moves the habitat colours (turns of the hue circle)

# --- rendering ------------------------------------------------------------------------------------
SUPERSAMPLE = 2  # drawn at twice the size, then halved: antialiased edges at the cost of 4x pixels
ORGANISM_SCALE = 0.42  # an organism of extent 1 spans this fraction of the image side
SCALE_RANGE = (0.78, 1.05)
SHIFT_RANGE = 0.10  # of the image side, either way
TILT: dict[str, float] = {"creature": 28.0, "plant": 8.0, "fungus": 10.0}  # degrees, either way
BRIGHTNESS_RANGE = (0.80, 1.18)
CONTRAST_RANGE = (0.85, 1.12)
TINT_RANGE = 0.06  # per channel
BLUR_RANGE = (0.0, 0.9)  # Gaussian radius in output pixels at 128 px
NOISE_RANGE = (1.5, 7.0)  # standard deviation in 0-255 levels
SATURATION_RANGE = (0.30, 0.95)
VALUE_RANGE = (0.38, 0.95)
# The hue gene folds into this range for the body colour of a plan (plants stay leafy, fungi earthy);
# creatures, flowers and patterns use the whole circle.
BODY_HUES: dict[str, tuple[float, float]] = {"plant": (0.12, 0.47), "fungus": (-0.04, 0.16), "creature": (0.0, 1.0)}
MOTTLE_LEVEL = 9.0  # standard deviation of the habitat's coarse light and shade, 0-255 levels
MOTTLE_COLOUR = 3.0
OUTLINE_DARKEN = 0.45
EYE_WHITE = (246, 246, 240)
EYE_PUPIL = (20, 20, 24)

# --- the whole chain (`python -m demo`) -----------------------------------------------------------------
DEFAULT_WORKDIR = "var"
DEMO_MODEL_NAME = "demo"  # the model folder's name, hence the Qdrant vector name's start (`demo-<sha256>`)
DEMO_TRAIN_CONFIG = "demo"  # training/configs/demo.json
UI_SCRIPT = "ui/app.py"
DEFAULT_UI_PORT = 8501
