"""Generates the commerce-agent dataset shipped with AdapterOps (deterministic: same code, same files).

The task follows the paper's commerce agent: a shopper writes a free-form request, and the model
either (a) formulates ONE catalog search query from it ("query-formulation") or (b) writes a
hypothetical product listing that is embedded to retrieve real items ("hypothetical-product").

Files written next to this script:
  train.jsonl        chat format ({"messages": [...]}) for SFT, both tasks, some two-turn refinements
  preference.jsonl   preference format ({"prompt", "system", "chosen", "rejected"}) for DPO; the
                     rejected answers carry the typical mistakes (dropped constraint, wrong colour,
                     chatty prose, invented brand)
  challenge.jsonl    challenge set ({"id", "task", "system", "prompt", "reference"}) for the judge;
                     no challenge request appears in the training files

    python training-jobs/datasets/commerce/generate.py          # rewrite the files
    python training-jobs/datasets/commerce/generate.py --check  # exit 1 if the files are stale
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path

SEED = 20240611
HERE = Path(__file__).resolve().parent
N_TRAIN, N_PREFERENCE, N_CHALLENGE = 240, 160, 48

SYSTEM = {
    "query-formulation": (
        "You are the query-formulation step of a shopping assistant. Rewrite the shopper's request as ONE "
        "concise product search query. Keep every constraint they state; add nothing they did not ask for. "
        "Reply with the query only."
    ),
    "hypothetical-product": (
        "You are the hypothetical-product step of a shopping assistant. Write a short catalog listing for the "
        "ideal product that satisfies the shopper's request, with the lines Title, Category, Attributes and "
        "Price. Reflect every constraint; invent no brand."
    ),
}


@dataclass(frozen=True)
class Product:
    kind: str
    category: str
    colors: tuple[str, ...]
    materials: tuple[str, ...]
    features: tuple[str, ...]
    uses: tuple[str, ...]
    prices: tuple[int, ...]


CATALOG = (
    Product(
        "running shoes",
        "Shoes > Athletic",
        ("black", "white", "navy", "grey"),
        ("mesh", "knit"),
        ("wide fit", "waterproof", "cushioned"),
        ("marathon training", "trail running", "daily jogs"),
        (60, 90, 120),
    ),
    Product(
        "travel mug",
        "Kitchen > Drinkware",
        ("black", "silver", "red", "green"),
        ("stainless steel", "ceramic"),
        ("leak-proof lid", "insulated", "dishwasher safe"),
        ("my commute", "camping", "the office"),
        (20, 30, 40),
    ),
    Product(
        "backpack",
        "Bags > Backpacks",
        ("black", "olive", "blue", "grey"),
        ("nylon", "canvas", "leather"),
        ("laptop compartment", "water resistant", "anti-theft"),
        ("college", "hiking", "business travel"),
        (50, 80, 150),
    ),
    Product(
        "wireless earbuds",
        "Electronics > Audio",
        ("black", "white", "blue"),
        ("plastic",),
        ("noise cancelling", "long battery life", "sweat resistant"),
        ("the gym", "flights", "phone calls"),
        (50, 100, 200),
    ),
    Product(
        "yoga mat",
        "Sports > Yoga",
        ("purple", "black", "teal", "pink"),
        ("cork", "natural rubber", "TPE"),
        ("extra thick", "non-slip", "lightweight"),
        ("hot yoga", "pilates", "travel"),
        (25, 40, 70),
    ),
    Product(
        "desk lamp",
        "Home > Lighting",
        ("white", "black", "brass"),
        ("aluminum", "wood"),
        ("dimmable", "USB charging port", "clamp mount"),
        ("reading", "a home office", "a dorm room"),
        (25, 45, 80),
    ),
    Product(
        "rain jacket",
        "Clothing > Outerwear",
        ("yellow", "navy", "black", "green"),
        ("nylon", "Gore-Tex"),
        ("packable", "hooded", "breathable"),
        ("hiking", "cycling to work", "a trip to Seattle"),
        (60, 120, 200),
    ),
    Product(
        "coffee grinder",
        "Kitchen > Coffee",
        ("black", "silver", "white"),
        ("stainless steel", "ceramic burr"),
        ("burr grinder", "quiet", "adjustable grind size"),
        ("espresso", "pour-over", "French press"),
        (40, 80, 150),
    ),
    Product(
        "phone case",
        "Electronics > Accessories",
        ("clear", "black", "pink", "blue"),
        ("silicone", "leather"),
        ("drop protection", "MagSafe compatible", "card holder"),
        ("an iPhone 15", "a Pixel 8", "a Galaxy S24"),
        (15, 25, 40),
    ),
    Product(
        "water bottle",
        "Sports > Hydration",
        ("blue", "black", "white", "orange"),
        ("stainless steel", "glass"),
        ("insulated", "straw lid", "32 oz"),
        ("the gym", "school", "hiking"),
        (15, 25, 40),
    ),
    Product(
        "office chair",
        "Furniture > Office",
        ("black", "grey", "white"),
        ("mesh", "leather"),
        ("lumbar support", "adjustable armrests", "headrest"),
        ("long work days", "a small apartment", "gaming"),
        (150, 250, 400),
    ),
    Product(
        "bluetooth speaker",
        "Electronics > Audio",
        ("black", "red", "blue"),
        ("fabric", "rubber"),
        ("waterproof", "loud bass", "20-hour battery"),
        ("the beach", "pool parties", "the shower"),
        (30, 60, 120),
    ),
    Product(
        "winter gloves",
        "Clothing > Accessories",
        ("black", "brown", "grey"),
        ("wool", "leather", "fleece"),
        ("touchscreen compatible", "insulated", "waterproof"),
        ("skiing", "commuting", "a gift for my dad"),
        (20, 40, 70),
    ),
    Product(
        "dog bed",
        "Pets > Dogs",
        ("grey", "brown", "beige"),
        ("memory foam", "fleece"),
        ("washable cover", "orthopedic", "raised edges"),
        ("a large dog", "a senior dog", "a puppy"),
        (40, 70, 120),
    ),
    Product(
        "gaming mouse",
        "Electronics > Computer",
        ("black", "white"),
        ("plastic",),
        ("wireless", "lightweight", "programmable buttons"),
        ("FPS games", "MMO games", "a left-handed gamer"),
        (30, 60, 100),
    ),
    Product(
        "sunglasses",
        "Accessories > Eyewear",
        ("black", "tortoise", "gold"),
        ("acetate", "metal"),
        ("polarized", "UV400", "lightweight"),
        ("driving", "fishing", "the beach"),
        (30, 80, 150),
    ),
)

OPENERS = ("", "Hi! ", "Hey, ", "Hello, ", "Quick question: ", "Can you help? ", "So ")
REQUESTS = (
    "I need a {color} {kind} for {use}, {feature} if possible, under ${price}.",
    "looking for {feature} {kind} in {color}, {material} would be great. Budget is ${price} max.",
    "my old {kind} broke. Want something {feature}, {color}, for {use}. Nothing over ${price} please.",
    "what's a good {material} {kind}? It's for {use} and I'd like it {color}. Keep it below ${price}.",
    "shopping for a {kind} for {use}. Must be {feature}. Prefer {color}. Can spend up to ${price}.",
    "any {color} {material} {kind} that is {feature}? Under ${price}, it's for {use}.",
    "I want to buy a {kind}, {color}, {material}, {feature}, less than ${price}.",
    "gift idea: a {feature} {kind} for {use}. They like {color}. Around ${price} or less.",
)
REFINEMENTS = (
    ("actually make it {color2} instead", "color"),
    ("can you drop the price limit to ${price2}?", "price"),
)
CHATTY = (
    "Sure! Here are some great options you might like: ",
    "Great question! I'd recommend searching for ",
    "Absolutely, happy to help. Try looking for ",
)
FAKE_BRANDS = ("Zentrix", "Auroma", "Velkor", "Nimbly", "Quorra")


@dataclass(frozen=True)
class Request:
    product: Product
    color: str
    material: str
    feature: str
    use: str
    price: int
    text: str


def make_request(rng: random.Random) -> Request:
    p = rng.choice(CATALOG)
    fields = {
        "kind": p.kind,
        "color": rng.choice(p.colors),
        "material": rng.choice(p.materials),
        "feature": rng.choice(p.features),
        "use": rng.choice(p.uses),
        "price": rng.choice(p.prices),
    }
    template = rng.choice(REQUESTS)
    text = rng.choice(OPENERS) + template.format(**fields)
    text = text[0].upper() + text[1:]
    # Constraints the template does not mention are not constraints: the answer must not add them.
    material = fields["material"] if "{material}" in template else ""
    use = fields["use"] if "{use}" in template else ""
    return Request(p, fields["color"], material, fields["feature"], use, fields["price"], text)


def query(r: Request, *, color: str | None = None, price: int | None = None) -> str:
    """The reference query: constraints in catalog order, short, no prose."""
    parts = [color or r.color, r.material, r.feature, r.product.kind]
    if r.use:
        parts.append(f"for {r.use}")
    parts.append(f"under ${price or r.price}")
    return " ".join(p for p in parts if p)


def listing(r: Request, *, brand: str | None = None) -> str:
    title = " ".join(
        p for p in (brand, r.color.title(), r.material.title(), r.feature.title(), r.product.kind.title()) if p
    )
    attrs = [f"color: {r.color}", f"{r.feature}"]
    if r.material:
        attrs.insert(1, f"material: {r.material}")
    if r.use:
        attrs.append(f"use: {r.use}")
    low = max(5, round(r.price * 0.6 / 5) * 5)
    return f"Title: {title}\nCategory: {r.product.category}\nAttributes: {'; '.join(attrs)}\nPrice: ${low}-${r.price}"


def answer(task: str, r: Request) -> str:
    return query(r) if task == "query-formulation" else listing(r)


def rejected_answer(task: str, r: Request, rng: random.Random) -> str:
    """A plausible wrong answer: the mistakes the judge rubric punishes."""
    mistake = rng.choice(("drop-price", "wrong-color", "chatty", "brand"))
    if task == "query-formulation":
        if mistake == "drop-price":
            return query(r).rsplit(" under $", 1)[0]
        if mistake == "wrong-color":
            return query(r, color=next(c for c in r.product.colors if c != r.color))
        if mistake == "chatty":
            return rng.choice(CHATTY) + query(r) + ". Let me know if you want more ideas!"
        return f"{rng.choice(FAKE_BRANDS)} {query(r)}"
    if mistake == "drop-price":
        return listing(r).rsplit("\nPrice:", 1)[0]
    if mistake == "wrong-color":
        other = next(c for c in r.product.colors if c != r.color)
        return listing(r).replace(r.color.title(), other.title()).replace(f"color: {r.color}", f"color: {other}")
    if mistake == "chatty":
        return f"{rng.choice(CHATTY)}a {r.color} {r.product.kind}. It should be great for you!"
    return listing(r, brand=rng.choice(FAKE_BRANDS))


def unique_requests(rng: random.Random, n: int, seen: set[str]) -> list[Request]:
    out: list[Request] = []
    while len(out) < n:
        r = make_request(rng)
        if r.text not in seen:
            seen.add(r.text)
            out.append(r)
    return out


def train_rows(rng: random.Random, requests: list[Request]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for i, r in enumerate(requests):
        task = "query-formulation" if i % 2 == 0 else "hypothetical-product"
        msgs = [{"role": "system", "content": SYSTEM[task]}, {"role": "user", "content": r.text}]
        # Every fifth query-formulation row is a two-turn refinement, as shoppers do in chat.
        if task == "query-formulation" and i % 10 == 0:
            text, what = rng.choice(REFINEMENTS)
            color2 = next(c for c in r.product.colors if c != r.color)
            price2 = max(10, r.price - 10 * rng.randint(1, 3))
            msgs += [
                {"role": "assistant", "content": query(r)},
                {"role": "user", "content": text.format(color2=color2, price2=price2)},
            ]
            final = query(r, color=color2) if what == "color" else query(r, price=price2)
        else:
            final = answer(task, r)
        rows.append({"messages": [*msgs, {"role": "assistant", "content": final}]})
    return rows


def preference_rows(rng: random.Random, requests: list[Request]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for i, r in enumerate(requests):
        task = "query-formulation" if i % 2 == 0 else "hypothetical-product"
        rows.append(
            {
                "system": SYSTEM[task],
                "prompt": r.text,
                "chosen": answer(task, r),
                "rejected": rejected_answer(task, r, rng),
            }
        )
    return rows


def challenge_rows(requests: list[Request]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for i, r in enumerate(requests):
        task = "query-formulation" if i % 2 == 0 else "hypothetical-product"
        rows.append(
            {
                "id": f"{'qf' if task == 'query-formulation' else 'hp'}-{i // 2 + 1:03d}",
                "task": task,
                "system": SYSTEM[task],
                "prompt": r.text,
                "reference": answer(task, r),
            }
        )
    return rows


def render(rows: list[dict[str, object]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def build() -> dict[str, str]:
    rng = random.Random(SEED)
    seen: set[str] = set()
    # Challenge prompts are drawn first and kept out of both training files.
    challenge = unique_requests(rng, N_CHALLENGE, seen)
    train = unique_requests(rng, N_TRAIN, seen)
    preference = unique_requests(rng, N_PREFERENCE, seen)
    return {
        "train.jsonl": render(train_rows(rng, train)),
        "preference.jsonl": render(preference_rows(rng, preference)),
        "challenge.jsonl": render(challenge_rows(challenge)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="exit 1 if the committed files differ")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    stale = []
    for name, text in build().items():
        path = args.out / name
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"stale: {', '.join(stale)}; run {Path(__file__).name}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
