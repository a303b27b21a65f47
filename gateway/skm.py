"""The citizens' satisfaction survey (Survei Kepuasan Masyarakat, SKM) and its index (IKM), as
PermenPANRB No. 14/2017 defines them. Pure: numbers in, numbers out; no database, no HTTP.

**The nine elements** (*unsur*), in the regulation's order and words: (1) Persyaratan;
(2) Sistem, Mekanisme, dan Prosedur; (3) Waktu Penyelesaian; (4) Biaya/Tarif; (5) Produk
Spesifikasi Jenis Pelayanan; (6) Kompetensi Pelaksana; (7) Perilaku Pelaksana;
(8) Penanganan Pengaduan, Saran dan Masukan; (9) Sarana dan Prasarana. Each is answered on
the scale 1 to 4 (1 the worst: *tidak sesuai* ... 4 *sangat sesuai*; for the cost
*sangat mahal* ... *gratis*). The questions and answer labels below are the questionnaire of
the regulation's annex as SKM forms commonly print it; the element names and the scale are
the regulation's.

**The index.** Per element, the mean of the answers (*nilai rata-rata*, NRR = sum of scores
/ respondents). The SKM value is the weighted mean of the nine NRRs, each weighing 1/9 (the
annex writes 0,111; the exact ninth is used here, so that all answers at 4 give 100, not
99,90). The IKM is the SKM value times 25 (the conversion to 25-100), rounded to two
decimals, and its quality category (*mutu pelayanan*):

====  ==============  =============  ===========
mutu  NI (interval)   IKM            kinerja
====  ==============  =============  ===========
A     3,5324 - 4,00   88,31 - 100    Sangat baik
B     3,0644 - 3,532  76,61 - 88,30  Baik
C     2,60 - 3,064    65,00 - 76,60  Kurang baik
D     1,00 - 2,5996   25,00 - 64,99  Tidak baik
====  ==============  =============  ===========

The category is read from the rounded IKM, so the table has no gaps (64,995 rounds to 65,00:
C).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

SCALE = (1, 2, 3, 4)
#: the conversion of the SKM value (1-4) to the index (25-100)
CONVERSION = 25
#: (lowest IKM of the category, category, performance in Indonesian, in English)
CATEGORIES = (
    (Decimal("88.31"), "A", "Sangat baik", "Very good"),
    (Decimal("76.61"), "B", "Baik", "Good"),
    (Decimal("65.00"), "C", "Kurang baik", "Poor"),
    (Decimal("25.00"), "D", "Tidak baik", "Very poor"),
)


@dataclass(frozen=True)
class Element:
    """One SKM element: its code (``u1``..``u9``, the column it is stored in), its name, the
    question and the four answers (1 to 4), each in Indonesian (``id``) and English."""

    code: str
    name: Mapping[str, str]
    question: Mapping[str, str]
    answers: Mapping[str, tuple[str, str, str, str]]


def _element(number: int, name_id: str, name_en: str, question_id: str, question_en: str,
             answers_id: tuple, answers_en: tuple) -> Element:
    return Element(f"u{number}", {"id": name_id, "en": name_en},
                   {"id": question_id, "en": question_en},
                   {"id": answers_id, "en": answers_en})


_FIT_ID = ("Tidak sesuai", "Kurang sesuai", "Sesuai", "Sangat sesuai")
_FIT_EN = ("Not appropriate", "Less appropriate", "Appropriate", "Very appropriate")

ELEMENTS: tuple[Element, ...] = (
    _element(1, "Persyaratan", "Requirements",
             "Bagaimana pendapat Saudara tentang kesesuaian persyaratan pelayanan dengan "
             "jenis pelayanannya?",
             "How appropriate were the service's requirements to the kind of service?",
             _FIT_ID, _FIT_EN),
    _element(2, "Sistem, Mekanisme, dan Prosedur", "Systems, mechanisms and procedures",
             "Bagaimana pemahaman Saudara tentang kemudahan prosedur pelayanan di unit ini?",
             "How easy was the service's procedure?",
             ("Tidak mudah", "Kurang mudah", "Mudah", "Sangat mudah"),
             ("Not easy", "Less easy", "Easy", "Very easy")),
    _element(3, "Waktu Penyelesaian", "Completion time",
             "Bagaimana pendapat Saudara tentang kecepatan waktu dalam memberikan pelayanan?",
             "How fast was the service delivered?",
             ("Tidak cepat", "Kurang cepat", "Cepat", "Sangat cepat"),
             ("Not fast", "Less fast", "Fast", "Very fast")),
    _element(4, "Biaya/Tarif", "Cost/tariff",
             "Bagaimana pendapat Saudara tentang kewajaran biaya/tarif dalam pelayanan?",
             "How fair was the cost or tariff of the service?",
             ("Sangat mahal", "Cukup mahal", "Murah", "Gratis"),
             ("Very expensive", "Quite expensive", "Cheap", "Free")),
    _element(5, "Produk Spesifikasi Jenis Pelayanan", "Service product specification",
             "Bagaimana pendapat Saudara tentang kesesuaian produk pelayanan antara yang "
             "tercantum dalam standar pelayanan dengan hasil yang diberikan?",
             "How well did what you received match what the service standard promises?",
             _FIT_ID, _FIT_EN),
    _element(6, "Kompetensi Pelaksana", "Competence of the staff",
             "Bagaimana pendapat Saudara tentang kompetensi/kemampuan petugas dalam "
             "pelayanan?",
             "How competent were the staff and the courier?",
             ("Tidak kompeten", "Kurang kompeten", "Kompeten", "Sangat kompeten"),
             ("Not competent", "Less competent", "Competent", "Very competent")),
    _element(7, "Perilaku Pelaksana", "Behaviour of the staff",
             "Bagaimana pendapat Saudara tentang perilaku petugas dalam pelayanan terkait "
             "kesopanan dan keramahan?",
             "How polite and friendly were the staff and the courier?",
             ("Tidak sopan dan ramah", "Kurang sopan dan ramah", "Sopan dan ramah",
              "Sangat sopan dan ramah"),
             ("Not polite and friendly", "Less polite and friendly", "Polite and friendly",
              "Very polite and friendly")),
    _element(8, "Penanganan Pengaduan, Saran dan Masukan",
             "Handling of complaints, suggestions and feedback",
             "Bagaimana pendapat Saudara tentang penanganan pengaduan pengguna layanan?",
             "How are complaints from service users handled?",
             ("Tidak ada", "Ada tetapi tidak berfungsi", "Berfungsi kurang maksimal",
              "Dikelola dengan baik"),
             ("There is none", "There is one but it does not work", "Works, not fully",
              "Well managed")),
    _element(9, "Sarana dan Prasarana", "Facilities and infrastructure",
             "Bagaimana pendapat Saudara tentang kualitas sarana dan prasarana?",
             "How good were the facilities and infrastructure?",
             ("Buruk", "Cukup", "Baik", "Sangat baik"),
             ("Poor", "Fair", "Good", "Very good")),
)
CODES = tuple(e.code for e in ELEMENTS)
WEIGHT = Fraction(1, len(ELEMENTS))


class InvalidAnswer(ValueError):
    """Scores that are not an SKM answer; ``fields`` maps each element code at fault to why
    (the public form shows them next to the question)."""

    def __init__(self, fields: dict[str, str]):
        super().__init__("not a valid SKM answer: " + ", ".join(sorted(fields)))
        self.fields = fields


def check_scores(values: Mapping[str, object]) -> dict[str, int]:
    """Exactly one score 1-4 for each of the nine elements (text digits accepted, as forms
    send them). :raises InvalidAnswer: naming every element at fault"""
    scores, faults = {}, {}
    for code in CODES:
        raw = values.get(code)
        text = str(raw).strip() if raw is not None else ""
        if not text:
            faults[code] = "missing"
        elif text not in {str(n) for n in SCALE}:
            faults[code] = "not_on_scale"
        else:
            scores[code] = int(text)
    if faults:
        raise InvalidAnswer(faults)
    return scores


def category(ikm: Decimal) -> tuple[str, str, str]:
    """``(category, performance id, performance en)`` of an IKM (rounded to two decimals)."""
    value = Decimal(ikm).quantize(Decimal("0.01"), ROUND_HALF_UP)
    for lowest, letter, label_id, label_en in CATEGORIES:
        if value >= lowest:
            return letter, label_id, label_en
    return CATEGORIES[-1][1:]


@dataclass(frozen=True)
class Index:
    """The SKM figures of a set of answers.

    :ivar respondents: how many answers
    :ivar means: per element code, the NRR (mean score 1-4, three decimals)
    :ivar value: the SKM value (NI, 1-4, four decimals)
    :ivar ikm: the index (25-100, two decimals)
    :ivar category: ``A``..``D``; ``performance``: its label in ``id`` and ``en``
    """

    respondents: int
    means: dict[str, Decimal]
    value: Decimal
    ikm: Decimal
    category: str
    performance: dict[str, str]


def _decimal(value: Fraction, places: str) -> Decimal:
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(
        Decimal(places), ROUND_HALF_UP)


def compute(answers: Iterable[Sequence[int] | Mapping[str, int]]) -> Index | None:
    """The index of ``answers`` (each the nine scores, in element order or by code); None
    when there are none. Exact arithmetic (fractions), rounded only at the end.

    :raises InvalidAnswer: an answer that is not nine scores on the scale
    """
    sums = [0] * len(CODES)
    respondents = 0
    for answer in answers:
        if not isinstance(answer, Mapping):
            if len(answer) != len(CODES):
                raise InvalidAnswer({"_answer": "nine_scores"})
            answer = dict(zip(CODES, answer, strict=True))
        scores = check_scores(answer)
        for i, code in enumerate(CODES):
            sums[i] += scores[code]
        respondents += 1
    return from_sums(respondents, sums)


def from_sums(respondents: int, sums: Sequence[int]) -> Index | None:
    """The index from per-element sums of scores (what a database ``SUM`` gives), the same
    figures :func:`compute` gives for the answers summed."""
    if not respondents:
        return None
    nrr = [Fraction(int(total), respondents) for total in sums]
    value = sum((mean * WEIGHT for mean in nrr), Fraction(0))
    ikm = _decimal(value * CONVERSION, "0.01")
    letter, label_id, label_en = category(ikm)
    return Index(respondents=respondents,
                 means={code: _decimal(mean, "0.001") for code, mean in zip(CODES, nrr,
                                                                            strict=True)},
                 value=_decimal(value, "0.0001"), ikm=ikm, category=letter,
                 performance={"id": label_id, "en": label_en})
