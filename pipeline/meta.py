"""PartNetE category metadata (SPEC §1.2).

The part order defines the semantic label id (0-based), the prompt order and the
detector class id. -1 always means "no part".
"""
from __future__ import annotations

PARTNETE_PARTS: dict[str, tuple[str, ...]] = {
    "Bottle": ("lid",),
    "Box": ("lid",),
    "Bucket": ("handle",),
    "Camera": ("button", "lens"),
    "Cart": ("wheel",),
    "Chair": ("arm", "back", "leg", "seat", "wheel"),
    "Clock": ("hand",),
    "CoffeeMachine": ("button", "container", "knob", "lid"),
    "Dishwasher": ("door", "handle"),
    "Dispenser": ("head", "lid"),
    "Display": ("base", "screen", "support"),
    "Door": ("frame", "door", "handle"),
    "Eyeglasses": ("body", "leg"),
    "Faucet": ("spout", "switch"),
    "FoldingChair": ("seat",),
    "Globe": ("sphere",),
    "Kettle": ("lid", "handle", "spout"),
    "Keyboard": ("cord", "key"),
    "KitchenPot": ("lid", "handle"),
    "Knife": ("blade",),
    "Lamp": ("base", "body", "bulb", "shade"),
    "Laptop": ("keyboard", "screen", "shaft", "touchpad", "camera"),
    "Lighter": ("lid", "wheel", "button"),
    "Microwave": ("display", "door", "handle", "button"),
    "Mouse": ("button", "cord", "wheel"),
    "Oven": ("door", "knob"),
    "Pen": ("cap", "button"),
    "Phone": ("lid", "button"),
    "Pliers": ("leg",),
    "Printer": ("button",),
    "Refrigerator": ("door", "handle"),
    "Remote": ("button",),
    "Safe": ("door", "switch", "button"),
    "Scissors": ("blade", "handle", "screw"),
    "Stapler": ("body", "lid"),
    "StorageFurniture": ("door", "drawer", "handle"),
    "Suitcase": ("handle", "wheel"),
    "Switch": ("switch",),
    "Table": ("door", "drawer", "leg", "tabletop", "wheel", "handle"),
    "Toaster": ("button", "slider"),
    "Toilet": ("lid", "seat", "button"),
    "TrashCan": ("footpedal", "lid", "door"),
    "USB": ("cap", "rotation"),
    "WashingMachine": ("door", "button"),
    "Window": ("window",),
}

#: Parts that win label ties in PartSLIP/PartSTAD label assignment (SPEC §6.2, §7.11).
SMALL_PARTS: frozenset[str] = frozenset(
    {"handle", "button", "wheel", "knob", "switch", "bulb", "shaft", "touchpad", "camera", "screw"}
)

CATEGORIES: tuple[str, ...] = tuple(PARTNETE_PARTS)


class UnknownCategoryError(KeyError):
    """Raised for a category name that is not one of the 45 PartNetE categories."""


def part_names(category: str) -> tuple[str, ...]:
    """Ordered part names of a category; raises UnknownCategoryError with close matches."""
    try:
        return PARTNETE_PARTS[category]
    except KeyError:
        import difflib

        close = difflib.get_close_matches(category, CATEGORIES, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UnknownCategoryError(f"unknown PartNetE category {category!r}{hint}") from None


def small_part_mask(category: str) -> list[bool]:
    """Per-part flag: True where the part name is in the small-part priority list."""
    return [name in SMALL_PARTS for name in part_names(category)]
