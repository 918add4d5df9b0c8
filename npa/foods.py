"""USDA SR28 food records: parse the shipped files into frozen values.

Theory of operation: the five SR28 files ship gzip-compressed in ``npa/data``. They are read once,
through ``importlib.resources`` (so an installed wheel works as well as a clone), and cached for
the life of the process. ``ABBREV`` gives the main nutrients per 100 g of edible portion;
``FOOD_DES`` the long description and food group; ``FD_GROUP`` the group names; ``WEIGHT`` the
household measures ("1 cup" = 227 g) that make portions a person can follow.

Format (SR28 documentation, ``sr28_doc.pdf``): fields separated by ``^``, text fields wrapped in
``~``, CRLF line ends, Latin-1 text (the ABBREV header names use ``µ``). An empty field means
"no value", never zero, so an absent nutrient is simply absent from ``Food.nutrients``.

Cite: U.S. Department of Agriculture, Agricultural Research Service. USDA National Nutrient
Database for Standard Reference, Release 28 (2016). Nutrient Data Laboratory.
"""

from __future__ import annotations

import functools
import gzip
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from types import MappingProxyType

__all__ = ["NUTRIENT_KEYS", "Food", "Measure", "load_foods", "load_groups"]

# ABBREV.txt column order (SR28 doc, table "Abbreviated file"), mapped to our snake_case keys.
# ``None`` marks the text / non-nutrient columns handled separately.
_ABBREV_COLUMNS: tuple[str | None, ...] = (
    None,  # NDB_No
    None,  # Shrt_Desc
    "water_g",
    "energy_kcal",
    "protein_g",
    "fat_g",
    "ash_g",
    "carbohydrate_g",
    "fiber_g",
    "sugar_g",
    "calcium_mg",
    "iron_mg",
    "magnesium_mg",
    "phosphorus_mg",
    "potassium_mg",
    "sodium_mg",
    "zinc_mg",
    "copper_mg",
    "manganese_mg",
    "selenium_ug",
    "vit_c_mg",
    "thiamin_mg",
    "riboflavin_mg",
    "niacin_mg",
    "pantothenic_acid_mg",
    "vit_b6_mg",
    "folate_total_ug",
    "folic_acid_ug",
    "food_folate_ug",
    "folate_dfe_ug",
    "choline_mg",
    "vit_b12_ug",
    "vit_a_iu",
    "vit_a_rae_ug",
    "retinol_ug",
    "alpha_carotene_ug",
    "beta_carotene_ug",
    "beta_cryptoxanthin_ug",
    "lycopene_ug",
    "lutein_zeaxanthin_ug",
    "vit_e_mg",
    "vit_d_ug",
    "vit_d_iu",
    "vit_k_ug",
    "sat_fat_g",
    "mono_fat_g",
    "poly_fat_g",
    "cholesterol_mg",
    None,  # GmWt_1
    None,  # GmWt_Desc1
    None,  # GmWt_2
    None,  # GmWt_Desc2
    None,  # Refuse_Pct
)

NUTRIENT_KEYS: tuple[str, ...] = tuple(k for k in _ABBREV_COLUMNS if k is not None)


@dataclass(frozen=True, slots=True)
class Measure:
    """A household measure from WEIGHT.txt: ``amount`` x ``description`` weighs ``grams``."""

    amount: float
    description: str
    grams: float

    def text(self, count: int = 1) -> str:
        """Readable text for ``count`` of this measure: ``1 cup, chopped`` or ``2 x 0.5 cup``.

        The count is kept apart from the amount because descriptions often carry their own
        numbers ("cup (1 NLEA serving)", "oz (49 kernels)") that multiplying would contradict.
        """
        single = f"{self.amount:g} {self.description}"
        return single if count == 1 else f"{count} x {single}"


@dataclass(frozen=True, slots=True)
class Food:
    """One SR28 food. ``nutrients`` is per 100 g edible portion; an absent key means no value."""

    ndb_no: str
    description: str
    short: str
    group_code: str
    group: str
    nutrients: Mapping[str, float]
    measures: tuple[Measure, ...]

    def __hash__(self) -> int:
        # ``nutrients`` is a read-only mapping (unhashable); NDB_No identifies a food in SR28.
        return hash(self.ndb_no)


def _rows(name: str) -> Iterator[list[str]]:
    """Yield the fields of each line of ``npa/data/<name>.txt.gz``, ``~`` quotes removed."""
    raw = resources.files("npa").joinpath("data", f"{name}.txt.gz").read_bytes()
    text = gzip.decompress(raw).decode("latin-1")
    for line in text.splitlines():
        if not line:
            continue
        yield [field.strip("~") for field in line.split("^")]


def _number(field: str) -> float | None:
    return float(field) if field.strip() else None


@functools.cache
def load_groups() -> dict[str, str]:
    """Food group code -> name, e.g. ``"0100" -> "Dairy and Egg Products"`` (25 groups)."""
    return {row[0]: row[1] for row in _rows("FD_GROUP")}


@functools.cache
def _measures() -> dict[str, tuple[Measure, ...]]:
    # WEIGHT.txt: NDB_No, Seq, Amount, Msre_Desc, Gm_Wgt, Num_Data_Pts, Std_Dev; kept in Seq order.
    found: dict[str, list[tuple[int, Measure]]] = {}
    for row in _rows("WEIGHT"):
        amount, grams = _number(row[2]), _number(row[4])
        if amount is None or grams is None or amount <= 0 or grams <= 0:
            continue
        found.setdefault(row[0], []).append((int(row[1]), Measure(amount, row[3], grams)))
    return {ndb: tuple(m for _, m in sorted(items, key=lambda it: it[0])) for ndb, items in found.items()}


@functools.cache
def load_foods() -> tuple[Food, ...]:
    """Every SR28 food (8,463), in NDB_No order. Parsed once per process, then cached."""
    groups = load_groups()
    measures = _measures()
    described = {row[0]: (row[1], row[2]) for row in _rows("FOOD_DES")}
    foods: list[Food] = []
    for row in _rows("ABBREV"):
        if len(row) != len(_ABBREV_COLUMNS):
            raise ValueError(f"ABBREV row {row[0]!r} has {len(row)} fields, expected {len(_ABBREV_COLUMNS)}")
        ndb = row[0]
        nutrients: dict[str, float] = {}
        for key, field in zip(_ABBREV_COLUMNS, row, strict=True):
            if key is None:
                continue
            value = _number(field)
            if value is not None:
                nutrients[key] = value
        group_code, long_desc = described[ndb]
        foods.append(
            Food(
                ndb_no=ndb,
                description=long_desc,
                short=row[1],
                group_code=group_code,
                group=groups[group_code],
                nutrients=MappingProxyType(nutrients),
                measures=measures.get(ndb, ()),
            )
        )
    foods.sort(key=lambda f: f.ndb_no)
    return tuple(foods)
