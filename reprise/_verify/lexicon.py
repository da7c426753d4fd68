"""The word lists the rule checks read: stopwords, negations, numbers, units,
groups of mutually exclusive words, languages, and the kinds a question can name.

Data only: the checks are in `rules.py`, the comparison of two prompts' words in
`surface.py`.
"""

from __future__ import annotations


def _words_of(text: str) -> list[str]:
    return text.split()


def _set(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words that carry no content of their own: they never make a difference.
STOPWORDS = _set(
    """a an the is are was were be been being am do does did doing done have has had having
    i me my mine we us our you your yours he him his she her it its they them their this that
    these those what which who whom whose when where why how there here of in on at by for with
    about as into onto to from up out over under again then once so than too very can could
    would should will shall may might must just also and or but if because while until though
    although any some such own same other each few more most s t ll ve re d m please tell
    know let like get got give make want need way ways best good really actually possible
    one thing things someone something anything anyone kind sort type types please hi hello
    help explain show describe mean means use used using go going come comes take"""
)
# "no", "not", "never" are excluded above on purpose: they are the negation check's.
NEGATIONS = _set("not no never none nobody nothing neither nor cannot without nowhere n't unable")

NUMBER_WORDS = {
    w: i
    for i, w in enumerate(
        _words_of(
            "zero _ two three four five six seven eight nine ten eleven twelve thirteen fourteen"
            " fifteen sixteen seventeen eighteen nineteen twenty"
        )
    )
} | {"thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80,
     "ninety": 90, "hundred": 100, "thousand": 1000, "million": 10**6, "billion": 10**9,
     "dozen": 12, "twice": 2}  # fmt: skip
ORDINALS = {
    w: i + 1
    for i, w in enumerate(
        ["first", "_", "third", "fourth", "fifth", "sixth", "seventh", "eighth", "ninth", "tenth"]
    )
}

# Unit spellings mapped to one canonical name: "km" and "kilometres" agree.
UNITS: dict[str, str] = {}
for _canon, _spellings in {
    "km": "km kms kilometer kilometers kilometre kilometres",
    "mile": "mi mile miles",
    "m": "meter meters metre metres",
    "cm": "cm centimeter centimeters centimetre centimetres",
    "mm": "mm millimeter millimeters millimetre millimetres",
    "inch": "inch inches",
    "foot": "ft foot feet",
    "yard": "yd yard yards",
    "kg": "kg kgs kilogram kilograms kilo kilos",
    "g": "gram grams",
    "lb": "lb lbs pound pounds",
    "oz": "oz ounce ounces",
    "ton": "ton tons tonne tonnes",
    "celsius": "celsius centigrade °c",
    "fahrenheit": "fahrenheit °f",
    "kelvin": "kelvin",
    "l": "liter liters litre litres",
    "ml": "ml milliliter milliliters millilitre millilitres",
    "gallon": "gallon gallons gal",
    "cup": "cup cups",
    "tbsp": "tbsp tablespoon tablespoons",
    "tsp": "tsp teaspoon teaspoons",
    "second": "sec secs second seconds",
    "minute": "min mins minute minutes",
    "hour": "hr hrs hour hours",
    "day": "day days",
    "week": "week weeks",
    "month": "month months",
    "year": "yr yrs year years",
    "kb": "kb kilobyte kilobytes",
    "mb": "mb megabyte megabytes",
    "gb": "gb gigabyte gigabytes",
    "tb": "tb terabyte terabytes",
    "bit": "bit bits",
    "byte": "byte bytes",
    "mph": "mph",
    "kph": "kph kmh km/h",
    "usd": "$ usd dollar dollars buck bucks",
    "eur": "€ eur euro euros",
    "gbp": "£ gbp sterling",
    "jpy": "¥ yen jpy",
    "inr": "₹ inr rupee rupees rs",
    "percent": "% percent percentage",
    "degree": "° degree degrees",
    "watt": "w watt watts",
    "kw": "kw kilowatt kilowatts",
    "volt": "v volt volts",
    "calorie": "calorie calories kcal cal",
    "hz": "hz hertz",
    "ghz": "ghz gigahertz",
    "pixel": "px pixel pixels",
    "word": "word words",
    "sentence": "sentence sentences",
    "paragraph": "paragraph paragraphs",
    "page": "page pages",
    "line": "line lines",
    "item": "item items",
    "step": "step steps",
}.items():
    for _s in _spellings.split():
        UNITS[_s] = _canon

# Groups of mutually exclusive words: swapping one member for another changes
# the request. Two-word groups are antonyms; larger ones are scopes/categories.
EXCLUSIVE_GROUPS: tuple[str, ...] = (
    # antonyms
    "on off", "enable disable", "enabled disabled", "ascending descending", "asc desc",
    "increase decrease", "increase reduce", "raise lower", "raise reduce", "rise fall",
    "increase lower", "boost reduce", "gain lose", "increasing decreasing", "before after",
    "max min", "maximum minimum", "largest smallest", "biggest smallest", "highest lowest",
    "shortest longest", "tallest shortest", "fastest slowest", "newest oldest",
    "latest earliest", "hottest coldest", "heaviest lightest", "strongest weakest",
    "richest poorest", "best worst",
    "best worst", "higher lower", "more less", "above below", "add remove", "push pull",
    "buy sell", "upload download", "import export", "start stop", "open close",
    "open closed", "opened closed", "opening closing", "good bad", "better worse",
    "true false", "positive negative", "left right", "up down", "win lose", "hot cold",
    "fast slow", "faster slower", "cheap expensive",
    "cheapest expensive", "advantages disadvantages",
    "pros cons", "love hate", "male female", "men women", "man woman", "boy girl", "boys girls",
    "young old", "younger older", "youngest oldest", "first last", "north south", "east west",
    "uppercase lowercase", "upper lower", "input output", "private public", "inner outer",
    "synchronous asynchronous", "sync async", "encode decode", "encoding decoding",
    "compress decompress", "encrypt decrypt", "encryption decryption", "serialize deserialize",
    "install uninstall", "lock unlock", "allow deny", "allow block", "accept reject",
    "horizontal vertical", "horizontally vertically", "absolute relative", "easy hard",
    "easy difficult", "light dark", "day night", "early late", "rich poor", "legal illegal",
    "long short", "longer shorter", "big small", "bigger smaller", "large small",
    "larger smaller", "tall short", "taller shorter", "heavy light", "heavier lighter",
    "strong weak", "stronger weaker", "grow shrink", "over under", "include exclude",
    "inclusive exclusive", "with without", "success failure", "pass fail", "happy sad",
    "love hate", "like dislike", "agree disagree", "safe unsafe", "safe dangerous",
    "healthy unhealthy", "gain lose", "gain loss", "profit loss", "import export",
    "internal external", "front back", "top bottom", "begin end", "beginning end",
    "start end", "connect disconnect", "attach detach", "mount unmount", "zip unzip",
    "show hide", "visible hidden", "read write", "send receive", "sent received",
    "client server", "frontend backend", "debit credit", "deposit withdraw", "borrow lend",
    "import require", "minimize maximize", "overestimate underestimate", "expand collapse",
    "inhale exhale", "arrival departure", "arrive depart", "wet dry", "full empty",
    "mean median", "sum product",
    # scopes and categories
    "vegetarian vegan pescatarian keto paleo carnivore",
    "hourly daily weekly monthly yearly/annually quarterly",
    "beginner/beginners intermediate advanced expert/experts",
    "all some none",
    "always sometimes never often rarely usually",
    "monday tuesday wednesday thursday friday saturday sunday",
    "january february march april june july august september october november december",
    "spring summer autumn/fall winter",
    "morning afternoon evening night tonight",
    "breakfast lunch dinner brunch",
    "today tomorrow yesterday",
    "plus minus times divided multiplied",
    "add subtract multiply divide",
    "addition subtraction multiplication division",
    "sum average/mean median mode",
    "brief/short detailed/long",
    "summary detailed",
    "singular plural",
    "past present future",
    "red orange yellow green blue purple violet pink brown black white grey/gray",
    "windows mac/macos linux ubuntu ios android",
    "iphone android",
    "chrome firefox safari edge opera",
    "aws azure gcp",
    "mysql postgres/postgresql sqlite mongodb redis oracle cassandra",
    "npm yarn pip conda cargo maven gradle",
    "docker podman",
    "react angular vue svelte",
    "cat/cats dog/dogs",
    "boil bake fry grill roast steam",
    "formal informal casual",
    "kid/kids/child/children adult/adults teen/teens/teenager/teenagers expert/experts"
    " professional/professionals",
    "wife husband",
    "mother/mom father/dad",
    "son daughter",
    "brother sister",
    "bachelor/bachelors master/masters phd",
    "mba ms mtech btech",
    "buy rent lease",
)  # fmt: skip
# Word -> (group, member) it belongs to; "a/b" spells one member two ways (kid/child).
GROUP_OF: dict[str, tuple[tuple[int, int], ...]] = {}
for _i, _g in enumerate(EXCLUSIVE_GROUPS):
    for _m, _member in enumerate(_g.split()):
        for _w in _member.split("/"):
            GROUP_OF[_w] = (*GROUP_OF.get(_w, ()), (_i, _m))

LANGUAGES = _set(
    """english french spanish german italian portuguese dutch russian chinese mandarin
    cantonese japanese korean arabic hindi bengali urdu punjabi tamil telugu marathi gujarati
    kannada malayalam turkish persian farsi hebrew greek latin polish ukrainian czech swedish
    norwegian danish finnish hungarian romanian thai vietnamese indonesian malay swahili
    tagalog filipino"""
)
PROGRAMMING = _set(
    """python java javascript typescript js ts c++ cpp c# csharp golang rust ruby php swift
    kotlin scala perl haskell matlab sql bash powershell lua dart elixir erlang clojure
    fortran cobol julia groovy objective-c assembly html css r c go"""
)
# One language, two names: "JS" and "JavaScript" agree.
LANG_ALIASES = {
    "js": "javascript", "ts": "typescript", "golang": "go", "cpp": "c++", "csharp": "c#",
    "farsi": "persian", "mandarin": "chinese", "filipino": "tagalog",
}  # fmt: skip
# "c", "r" and "go" are languages only when written as such ("in C", "Go's").
AMBIGUOUS_LANGS = frozenset({"c", "r", "go"})

# Prefixes that negate a word: "possible"/"impossible", "install"/"uninstall".
NEG_PREFIXES = ("un", "in", "im", "il", "ir", "dis", "de", "non", "non-", "anti", "a")
# "to" after these is an infinitive, not a direction ("how to", "want to").
INFINITIVE_TRIGGERS = _set(
    """how want wants wanted need needs needed have has had going able used way ways best
    easiest fastest tips try trying tried like wish hope plan learn start begin continue
    decide decided order ought supposed due about expected allowed possible hard easy
    reason reasons time place steps something anything nothing where what"""
)
DIRECTION_MARKERS = frozenset({"to", "into", "from", "than", "towards", "toward", "->", "→"})
BOUNDARY = frozenset({",", ";", ":", "?", "!", ".", "(", ")", "and", "or", "but", "vs"})

# "several thousand" and "thousands" say no number; "two thousand" and "a thousand" do.
MAGNITUDES = frozenset(("hundred", "thousand", "million", "billion"))
# What a number said before them is multiplied by: "15k", "2.5 million", a "7b" model.
SCALES = {
    "k": 1e3,
    "hundred": 1e2,
    "thousand": 1e3,
    "million": 1e6,
    "billion": 1e9,
    "bn": 1e9,
    "b": 1e9,
}
VAGUE = frozenset(("several", "many", "few", "some", "multiple", "countless", "of"))

ENTITY_KINDS = _set(
    "city cities town country countries nation state states province capital continent "
    "island islands river rivers lake lakes mountain mountains ocean sea planet planets "
    "language company companies person team element"
)
