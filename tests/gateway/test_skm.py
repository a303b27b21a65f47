"""The SKM index (PermenPANRB 14/2017) against figures computed by hand."""

from __future__ import annotations

from decimal import Decimal

import pytest

from gateway import skm


def test_nine_elements_in_the_regulations_order_and_words():
    assert [e.name["id"] for e in skm.ELEMENTS] == [
        "Persyaratan", "Sistem, Mekanisme, dan Prosedur", "Waktu Penyelesaian", "Biaya/Tarif",
        "Produk Spesifikasi Jenis Pelayanan", "Kompetensi Pelaksana", "Perilaku Pelaksana",
        "Penanganan Pengaduan, Saran dan Masukan", "Sarana dan Prasarana"]
    assert all(len(e.answers["id"]) == 4 and len(e.answers["en"]) == 4 for e in skm.ELEMENTS)
    assert skm.ELEMENTS[3].answers["id"][0] == "Sangat mahal"
    assert skm.ELEMENTS[3].answers["id"][3] == "Gratis"


def test_index_of_three_respondents_matches_the_hand_computation():
    # u1..u9 sums: 10, 9, 8, 12, 11, 9, 10, 7, 9 over 3 respondents
    answers = [[4, 3, 3, 4, 4, 3, 3, 2, 3],
               [3, 3, 2, 4, 4, 3, 4, 2, 3],
               [3, 3, 3, 4, 3, 3, 3, 3, 3]]
    index = skm.compute(answers)
    # NRR: 3.333, 3, 2.667, 4, 3.667, 3, 3.333, 2.333, 3; sum 85/3; /9 = 85/27 = 3.148148..
    assert index.respondents == 3
    assert index.means["u1"] == Decimal("3.333")
    assert index.means["u3"] == Decimal("2.667")
    assert index.means["u8"] == Decimal("2.333")
    assert index.value == Decimal("3.1481")
    # x 25 = 2125/27 = 78.7037... -> 78.70, category B (76.61 - 88.30), "Baik"
    assert index.ikm == Decimal("78.70")
    assert (index.category, index.performance["id"]) == ("B", "Baik")


def test_all_best_answers_give_100_and_all_worst_give_25():
    assert skm.compute([[4] * 9]).ikm == Decimal("100.00")
    assert skm.compute([[4] * 9]).category == "A"
    worst = skm.compute([[1] * 9, [1] * 9])
    assert (worst.ikm, worst.category, worst.performance["en"]) == (Decimal("25.00"), "D",
                                                                    "Very poor")


def test_one_respondent_by_codes():
    # sum 30 / 9 = 3.3333 -> 83.33 (B)
    index = skm.compute([{"u1": 4, "u2": 4, "u3": 4, "u4": 3, "u5": 3, "u6": 3, "u7": 3,
                          "u8": 3, "u9": 3}])
    assert (index.value, index.ikm, index.category) == (Decimal("3.3333"), Decimal("83.33"),
                                                        "B")


@pytest.mark.parametrize(("ikm", "letter"), [
    ("100", "A"), ("88.31", "A"), ("88.30", "B"), ("88.305", "A"), ("76.61", "B"),
    ("76.60", "C"), ("65.00", "C"), ("64.99", "D"), ("64.995", "C"), ("25.00", "D")])
def test_categories_follow_the_official_interval_bounds(ikm, letter):
    assert skm.category(Decimal(ikm))[0] == letter


def test_bound_between_c_and_b_from_answers():
    # 27 scores: sum 69 -> 69/27 = 2.5556 -> 63.89 (D); sum 71 -> 65.74 (C)
    low = [3] * 9, [2] * 9, [3, 3, 3, 3, 3, 3, 2, 2, 2]
    assert sum(map(sum, low)) == 69
    assert (skm.compute(low).ikm, skm.compute(low).category) == (Decimal("63.89"), "D")
    high = [3] * 9, [2] * 9, [3, 3, 3, 3, 3, 3, 3, 3, 2]
    assert sum(map(sum, high)) == 71
    assert (skm.compute(high).ikm, skm.compute(high).category) == (Decimal("65.74"), "C")


def test_no_answers_no_index():
    assert skm.compute([]) is None
    assert skm.from_sums(0, [0] * 9) is None


def test_from_sums_equals_compute():
    answers = [[4, 3, 3, 4, 4, 3, 3, 2, 3], [1, 2, 3, 4, 1, 2, 3, 4, 1]]
    sums = [sum(a[i] for a in answers) for i in range(9)]
    assert skm.from_sums(2, sums) == skm.compute(answers)


@pytest.mark.parametrize("bad", [
    {"u1": "5"}, {"u1": "0"}, {"u1": ""}, {"u1": "3.5"}, {"u1": "-1"}, {"u1": "1e0"},
    {"u1": "٣"}, {"u1": None}])
def test_scores_off_the_scale_are_refused_naming_the_element(bad):
    values = {code: "3" for code in skm.CODES} | bad
    with pytest.raises(skm.InvalidAnswer) as caught:
        skm.check_scores(values)
    assert set(caught.value.fields) == {"u1"}


def test_an_answer_with_the_wrong_number_of_scores_is_refused():
    with pytest.raises(skm.InvalidAnswer):
        skm.compute([[4] * 8])
