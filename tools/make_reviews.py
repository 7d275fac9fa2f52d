"""Regenerate ``zgpu_pandas/data/reviews.csv``, the demo's bundled review data set.

The reviews are composed here from fixed phrase lists with a seeded RNG, so the file is
reproducible and owes nothing to any outside data set. A share of rows is deliberately
awkward: empty, whitespace only, missing, very long, emoji, non-Latin scripts, quotes and
newlines inside the text, numbers only.

Run: ``python tools/make_reviews.py``
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

PRODUCTS = [
    "kettle",
    "headphones",
    "desk lamp",
    "backpack",
    "blender",
    "phone case",
    "running shoes",
    "coffee grinder",
    "keyboard",
    "air purifier",
]
POSITIVE = [
    "Works perfectly and arrived early.",
    "Great value for the price.",
    "Sturdy, quiet and easy to clean.",
    "Exceeded my expectations.",
    "Battery lasts for days, very happy.",
    "Looks even better than the photos.",
]
NEGATIVE = [
    "Stopped working after two weeks.",
    "The lid cracked on the first day.",
    "Customer support never answered my emails.",
    "Much smaller than described.",
    "Loud and it smells of burnt plastic.",
    "Arrived damaged and late.",
]
NEUTRAL = [
    "It does the job, nothing special.",
    "Average quality, average price.",
    "Fine for occasional use.",
    "Colour is a bit different but okay.",
]
TOPICS = [
    "Shipping was fast.",
    "Packaging was excessive.",
    "Instructions were unclear.",
    "The price dropped a week later.",
    "Setup took five minutes.",
]
ODD = [
    "",
    "   ",
    None,
    "👍👍👍",
    "¡Excelente producto! Lo recomiendo.",
    "非常好用，物超所值。",
    'He said "best purchase ever", and he was right.',
    "Line one.\nLine two, after a newline.",
    "5",
    "0/10 would not buy again 😡",
    "Tres bien, mais un peu cher.",
    "Отличный чайник, быстро закипает.",
]


def main() -> None:
    rng = random.Random(20261125)
    rows = []
    for i in range(300):
        product = rng.choice(PRODUCTS)
        stars = rng.randint(1, 5)
        roll = rng.random()
        if roll < 0.08:
            text = rng.choice(ODD)
        else:
            pool = POSITIVE if stars >= 4 else NEGATIVE if stars <= 2 else NEUTRAL
            parts = [rng.choice(pool)]
            if rng.random() < 0.5:
                parts.append(rng.choice(TOPICS))
            if rng.random() < 0.02:
                parts.append(" ".join(rng.choice(POSITIVE + NEGATIVE) for _ in range(40)))
            text = f"The {product}: " + " ".join(parts)
        rows.append(
            {"review_id": f"r{i + 1:04d}", "product": product, "stars": stars, "review": text}
        )
    out = Path(__file__).resolve().parent.parent / "zgpu_pandas" / "data" / "reviews.csv"
    with out.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=["review_id", "product", "stars", "review"])
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    print(f"wrote {len(rows)} rows to {out}")


if __name__ == "__main__":
    main()
