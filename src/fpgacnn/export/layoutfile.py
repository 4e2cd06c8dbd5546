"""Layout files (TOML): named layouts, the layout of each tensor kind, per-layer overrides.

    [layouts.seed_weights]
    pattern = "(k j) (p i) x y -> (p k x y) (i j)"
    sizes = { j = 2, i = 16 }
    bits = 16
    msb_first = true

    [kinds]                 # tensor kind -> layout name, for every layer
    weight = "seed_weights"

    [layers.conv5]          # one layer's own choice
    weight = "seed_weights"

Tensor kinds: `weight` (OIHW; an FC weight is read as (O, I, 1, 1)), `bias`, `requant`
(per-channel requantization parameters; their bits are the field's own width) and `fmap`
(NCHW feature maps; an (N, F) vector is read as (N, F, 1, 1)). A kind not named in the file
keeps the default that `default_layouts` derives from the hardware configuration. The engine's
parameter record (kind `params`) has the one layout the engine reads and cannot be chosen.
"""

from dataclasses import dataclass, fields
from types import MappingProxyType
from typing import Mapping

from fpgacnn.config import HardwareConfig, read_toml
from fpgacnn.errors import UserError
from fpgacnn.export.layout import Layout

KINDS = ("weight", "bias", "requant", "fmap")
_LAYOUT_KEYS = {f.name for f in fields(Layout)}


def default_layouts(config: HardwareConfig) -> dict[str, Layout]:
    """The layouts the engine reads (docs/export.md, "The DDR image convention").

    >>> default_layouts(HardwareConfig())["fmap"].pattern
    'n (cb l) h w -> (n cb h w) l'
    """
    return {
        "weight": Layout("(mb q) (nb l) ky kx -> (mb nb ky kx) (q l)",
                         {"q": config.tm, "l": config.tn}, bits=config.weight_bits, pad=True),
        "bias": Layout("(mb q) -> mb q", {"q": config.tm}, bits=config.acc_bits, pad=True),
        "requant": Layout("(mb q) -> mb q", {"q": config.tm}, bits=32, pad=True),
        "params": Layout("(mb q) f -> (mb f) q", {"q": config.tm}, bits=config.acc_bits,
                         pad=True),
        "fmap": Layout("n (cb l) h w -> (n cb h w) l", {"l": config.tn}, bits=config.act_bits,
                       pad=True),
    }


def layout_from_table(table: Mapping, where: str) -> Layout:
    """A Layout from a TOML table with Layout's field names."""
    unknown = set(table) - _LAYOUT_KEYS
    if unknown:
        raise UserError(f"{where}: unknown key {sorted(unknown)[0]!r}; known: "
                        f"{', '.join(sorted(_LAYOUT_KEYS))}")
    if "pattern" not in table:
        raise UserError(f"{where}: 'pattern' is missing")
    try:
        return Layout(**table)
    except UserError as e:
        raise UserError(f"{where}: {e}") from None
    except TypeError as e:
        raise UserError(f"{where}: {e}") from None


@dataclass(frozen=True)
class LayoutFile:
    """The parsed layout file; `layout_for(layer, kind, defaults)` picks a layer's layout."""

    path: str
    layouts: Mapping[str, Layout]
    kinds: Mapping[str, str]
    layers: Mapping[str, Mapping[str, str]]

    @classmethod
    def load(cls, path) -> "LayoutFile":
        data = read_toml(path, "layout file")
        unknown = set(data) - {"layouts", "kinds", "layers"}
        if unknown:
            raise UserError(f"layout file {path}: unknown table [{sorted(unknown)[0]}]; "
                            f"known: layouts, kinds, layers")
        layouts = {name: layout_from_table(t, f"layout file {path}: [layouts.{name}]")
                   for name, t in data.get("layouts", {}).items()}
        kinds = dict(data.get("kinds", {}))
        layers = {name: dict(t) for name, t in data.get("layers", {}).items()}
        loaded = cls(str(path), MappingProxyType(layouts), MappingProxyType(kinds),
                     MappingProxyType(layers))
        loaded._check_names(kinds, "[kinds]")
        for name, choice in layers.items():
            loaded._check_names(choice, f"[layers.{name}]")
        return loaded

    def _check_names(self, choice: Mapping[str, str], where: str) -> None:
        for kind, name in choice.items():
            if kind not in KINDS:
                raise UserError(f"layout file {self.path}: {where} names kind {kind!r}; "
                                f"known: {', '.join(KINDS)}")
            self.named(name, f"{where} {kind}")

    def named(self, name: str, where: str = "") -> Layout:
        """The layout called `name` in the file."""
        if name not in self.layouts:
            known = ", ".join(self.layouts) or "none"
            raise UserError(f"layout file {self.path}: {where + ': ' if where else ''}no layout "
                            f"named {name!r} (known: {known})")
        return self.layouts[name]

    def layout_for(self, layer: str, kind: str, defaults: Mapping[str, Layout]) -> Layout:
        """The layer's own choice, else the file's choice for the kind, else the default."""
        name = self.layers.get(layer, {}).get(kind) or self.kinds.get(kind)
        return self.named(name) if name else defaults[kind]

    def unknown_layers(self, known) -> list[str]:
        return sorted(set(self.layers) - set(known))
