"""PartNetE category metadata (SPEC §1.2).

The part order defines the semantic label id (0-based), the prompt order and the
detector class id. -1 always means "no part".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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
SMALL_PARTS: frozenset[str] = frozenset({"handle", "button", "wheel", "knob", "switch", "bulb", "shaft", "touchpad", "camera", "screw"})

CATEGORIES: tuple[str, ...] = tuple(PARTNETE_PARTS)


#: Part names of user categories (not among the 45 PartNetE ones), registered from the
#: configuration (``data.part_names``) by the glue before any object runs.
_CUSTOM_PARTS: dict[str, tuple[str, ...]] = {}


class UnknownCategoryError(KeyError):
    """Raised for a category that is neither a PartNetE category nor registered with part names."""


def register_part_names(mapping: Mapping[str, Sequence[str]] | None) -> None:
    """Make user categories known to :func:`part_names` (idempotent; PartNetE names cannot be redefined)."""
    for category, names in (mapping or {}).items():
        if category in PARTNETE_PARTS and tuple(names) != PARTNETE_PARTS[category]:
            raise ValueError(
                f"category {category!r} is a PartNetE category; its part names are fixed ({', '.join(PARTNETE_PARTS[category])})"
            )
        if category not in PARTNETE_PARTS:
            _CUSTOM_PARTS[category] = tuple(names)


def known_categories() -> tuple[str, ...]:
    """The 45 PartNetE categories plus the registered user categories."""
    return CATEGORIES + tuple(c for c in _CUSTOM_PARTS if c not in PARTNETE_PARTS)


def part_names(category: str) -> tuple[str, ...]:
    """Ordered part names of a category; raises UnknownCategoryError with close matches."""
    try:
        return PARTNETE_PARTS[category]
    except KeyError:
        pass
    if category in _CUSTOM_PARTS:
        return _CUSTOM_PARTS[category]
    import difflib

    close = difflib.get_close_matches(category, known_categories(), n=3)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise UnknownCategoryError(
        f"unknown PartNetE category {category!r}{hint}: category {category!r} has no part names; "
        f"for your own category give them in params, e.g. -S 'data.part_names={{{category}: [lid, handle, body]}}'"
    ) from None


def small_part_mask(category: str) -> list[bool]:
    """Per-part flag: True where the part name is in the small-part priority list."""
    return [name in SMALL_PARTS for name in part_names(category)]
