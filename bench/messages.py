"""Deterministic, realistic agent messages: prose, code and JSON tool output.

Every generator takes a ``random.Random`` so that a run is reproducible.  The
text is built from a vocabulary with a Zipf-like word frequency, random
identifiers, numbers, ids and timestamps, so that it compresses about as well
as real assistant output (zstd level 3 gets roughly 3.5-4.5x on English
documentation and source code), not like a repeated string.
"""

from __future__ import annotations

import json
import random
import uuid
from typing import Any


def _split(text: str) -> list[str]:
    return text.split()


_WORDS = _split(
    """
the of and to a in is it that for you was on are with as be this have from or
one had by but not what all were we when your can said there use an each which
she do how their if will up other about out many then them these so some her
would make like him into time has look two more write go see number no way could
people my than first water been call who oil its now find long down day did get
come made may part over new sound take only little work know place year live me
back give most very after thing our just name good sentence man think say great
where help through much before line right too mean old any same tell boy follow
came want show also around form three small set put end does another well large
must big even such because turn here why ask went men read need land different
home us move try kind hand picture again change off play spell air away animal
house point page letter mother answer found study still learn should world high
every near add food between own below country plant last school father keep tree
never start city earth eye light thought head under story saw left few while
along might close something seem next hard open example begin life always those
both paper together got group often run important until children side feet car
mile night walk white sea began grow took river four carry state once book hear
stop without second later miss idea enough eat face watch far really almost let
above girl sometimes mountain cut young talk soon list song being leave family
function value return error request response server client database query table
index cache memory thread process file directory path config option parameter
result output input stream buffer packet network timeout retry handler callback
token model prompt context message agent tool schema field record batch job stage
checkpoint commit branch merge deploy build test module package import class type
string integer list dict object array key map set tuple lambda async await yield
exception warning debug log metric latency throughput user account session access
permission policy region cluster node pod container image volume secret service
"""
)

_IDENT_PARTS = _split(
    """
get set load save parse build run fetch send read write update delete create find
user item order account session request result data state config cache index node
count total max min size len name id key value path url token batch page limit
"""
)

_WEIGHTS = [1.0 / (rank + 1) ** 1.1 for rank in range(len(_WORDS))]
# Real text repeats phrases, not only words: a fixed bank of short phrases
# (drawn once from a fixed seed) is mixed into sentences.
_PHRASE_RNG = random.Random(20250101)
_PHRASES = [
    " ".join(_PHRASE_RNG.choices(_WORDS, weights=_WEIGHTS, k=_PHRASE_RNG.randint(3, 6)))
    for _ in range(400)
]


def _words(rng: random.Random, count: int) -> list[str]:
    return rng.choices(_WORDS, weights=_WEIGHTS, k=count)


def _sentence(rng: random.Random) -> str:
    words: list[str] = []
    target = rng.randint(6, 22)
    while len(words) < target:
        if rng.random() < 0.5:
            words.append(rng.choice(_PHRASES))
        else:
            words.extend(_words(rng, rng.randint(1, 4)))
    if rng.random() < 0.25:
        words.insert(rng.randrange(len(words)), f"`{_identifier(rng)}`")
    if rng.random() < 0.2:
        words.insert(rng.randrange(len(words)), str(rng.randint(2, 100_000)))
    text = " ".join(words)
    return text[0].upper() + text[1:] + rng.choice(".....?!:")


def _identifier(rng: random.Random) -> str:
    parts = rng.sample(_IDENT_PARTS, rng.randint(1, 3))
    return "_".join(parts)


def prose(rng: random.Random, length: int) -> str:
    """Paragraphs of plain text of about ``length`` characters."""
    out: list[str] = []
    size = 0
    while size < length:
        paragraph = " ".join(_sentence(rng) for _ in range(rng.randint(2, 5)))
        out.append(paragraph)
        size += len(paragraph) + 2
    return "\n\n".join(out)


def code(rng: random.Random, length: int) -> str:
    """A fenced block of Python-like source of about ``length`` characters."""
    lines = ["```python"]
    size = 0
    while size < length:
        name = _identifier(rng)
        args = ", ".join(_identifier(rng) for _ in range(rng.randint(0, 3)))
        block = [f"def {name}({args}):", f'    """{_sentence(rng)}"""']
        for _ in range(rng.randint(2, 6)):
            target, source = _identifier(rng), _identifier(rng)
            kind = rng.random()
            if kind < 0.3:
                block.append(f"    {target} = {source}.get({rng.randint(0, 999)!r})")
            elif kind < 0.5:
                block.append(f"    if {target} > {rng.randint(0, 4096)}:")
                block.append(f"        raise ValueError(f'{_words(rng, 1)[0]} {{{target}}}')")
            elif kind < 0.7:
                block.append(f"    for {target} in {source}:")
                block.append(f"        {_identifier(rng)}.append({target})")
            else:
                block.append(f"    {target} = {source}({rng.random():.4f})")
        block.append(f"    return {_identifier(rng)}")
        text = "\n".join(block)
        lines.append(text)
        size += len(text) + 1
    lines.append("```")
    return "\n".join(lines)


def tool_output(rng: random.Random, length: int) -> str:
    """JSON text like a search or API tool returns, of about ``length`` characters."""
    rows: list[dict[str, Any]] = []
    size = 0
    while size < length:
        row = {
            "id": str(uuid.UUID(int=rng.getrandbits(128))),
            "name": _identifier(rng),
            "score": round(rng.random(), 4),
            "count": rng.randint(0, 50_000),
            "updated": f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}T"
            f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d}Z",
            "tags": _words(rng, rng.randint(1, 4)),
            "source": rng.choice(("web", "docs", "issues", "code", "wiki")),
            "status": rng.choice(("open", "closed", "merged", "draft")),
            "language": rng.choice(("en", "en", "en", "de", "fr")),
        }
        if rng.random() < 0.5:
            row["summary"] = _sentence(rng)
        rows.append(row)
        size += len(json.dumps(row))
    return json.dumps({"status": "ok", "results": rows}, indent=1)


def message(rng: random.Random, step: int, size: int = 1024) -> dict[str, Any]:
    """One chat message of about ``size`` characters of content, as an agent state holds it."""
    pick = rng.random()
    if pick < 0.35:
        role, content = "assistant", prose(rng, size)
    elif pick < 0.55:
        role = "assistant"
        lead = prose(rng, size // 4)
        content = lead + "\n\n" + code(rng, size - len(lead))
    elif pick < 0.8:
        role, content = "tool", tool_output(rng, size)
    else:
        role, content = "user", prose(rng, size)
    msg: dict[str, Any] = {
        "id": str(uuid.UUID(int=rng.getrandbits(128))),
        "role": role,
        "content": content[: size + size // 8],
        "step": step,
    }
    if role == "tool":
        msg["tool_call_id"] = f"call_{rng.getrandbits(64):016x}"
        msg["name"] = _identifier(rng)
    return msg


def messages(seed: int, count: int, size: int = 1024) -> list[dict[str, Any]]:
    """``count`` messages from generator seed ``seed``."""
    rng = random.Random(seed)
    return [message(rng, step, size) for step in range(count)]


def bulk_text(seed: int, size: int) -> bytes:
    """About ``size`` bytes of word-level text, fast enough for values of 100 MB and more.

    Words follow the same Zipf-like frequencies as :func:`prose` (no phrase
    bank), broken into lines; it compresses about 3x with zstd.
    """
    rng = random.Random(seed)
    out = bytearray()
    while len(out) < size:
        words = rng.choices(_WORDS, weights=_WEIGHTS, k=4096)
        for start in range(0, len(words), 16):
            out += " ".join(words[start : start + 16]).encode()
            out += b".\n" if rng.random() < 0.5 else b",\n"
    del out[size:]
    return bytes(out)
