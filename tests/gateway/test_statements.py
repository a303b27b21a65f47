"""The statement's pure parts: the region's month, reading a provider's invoice as hostile input
(size, rows, encodings, delimiters, strict amounts) and matching it by order id."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateway import csvexport, statements
from gateway.region import Region
from gateway.statements import InvoiceError, InvoiceRow, Line, Statement, parse_amount


def region(time_zone: str) -> Region:
    return Region.from_settings({"time_zone": time_zone})


# -- the month on the region's clock ---------------------------------------------------------
def test_a_month_starts_and_ends_at_local_midnight_of_the_regions_zone():
    assert statements.month_bounds(region("Asia/Jakarta"), "2026-03") == (
        datetime(2026, 2, 28, 17, tzinfo=UTC), datetime(2026, 3, 31, 17, tzinfo=UTC))
    assert statements.month_bounds(region("Asia/Makassar"), "2026-12") == (
        datetime(2026, 11, 30, 16, tzinfo=UTC), datetime(2026, 12, 31, 16, tzinfo=UTC))
    # 23:30 WIB on 31 March is March's; the same instant is 00:30 WITA on 1 April
    moment = datetime(2026, 3, 31, 16, 30, tzinfo=UTC)
    assert statements.month_of(region("Asia/Jakarta"), moment) == "2026-03"
    assert statements.month_of(region("Asia/Makassar"), moment) == "2026-04"


@pytest.mark.parametrize("month", ["2026-13", "2026-3", "26-03", "2026-03-01", "", "1999-01",
                                   "2026-00", "２０２６-03"])
def test_a_month_that_is_not_yyyy_mm_is_refused(month):
    with pytest.raises(statements.Invalid):
        statements.month_bounds(region("Asia/Jakarta"), month)


# -- amounts ----------------------------------------------------------------------------------
@pytest.mark.parametrize("text, amount", [
    ("15000", 15000), ("15.000", 15000), ("15000,00", 15000), ("15.000,00", 15000),
    ("1.250.000", 1250000), ("Rp 15.000", 15000), ("Rp15.000", 15000),
    ("IDR 15000", 15000), ("15,000", 15000), ("1,250,000.00", 1250000), ("15000.00", 15000),
    ("15000.0", 15000), (" 15 000 ", 15000), ("0", 0), ("999", 999),
])
def test_amounts_are_read_as_indonesian_invoices_write_whole_rupiah(text, amount):
    assert parse_amount(text) == amount


@pytest.mark.parametrize("text", [
    "", "-15000", "15.00.0", "15,5", "15000,50", "1.5", "15000.5", "1e5", "=1+1", "15.0000",
    "abc", "15000 IDR", ".", ",", "1" * 16, "15..000", "+15000", "0x10", "١٥٠٠٠",
])
def test_amounts_that_are_not_whole_rupiah_are_refused(text):
    with pytest.raises(ValueError):
        parse_amount(text)


# -- reading the invoice ----------------------------------------------------------------------
def test_lalamove_headers_semicolons_and_a_byte_order_mark_are_read():
    data = "\ufefforderId;price;date\r\nLL-1;15.000;2026-03-01\r\nLL-2;20000,00;\r\n"
    rows, problems = statements.read_invoice(data.encode("utf-8"))
    assert rows == [InvoiceRow(2, "LL-1", 15000, "2026-03-01"), InvoiceRow(3, "LL-2", 20000, None)]
    assert problems == []


def test_a_spreadsheets_sep_line_chooses_the_delimiter():
    rows, _ = statements.read_invoice(b"sep=;\r\norder_id;amount\r\nGK-1;1.000,00\r\n")
    assert rows == [InvoiceRow(2, "GK-1", 1000, None)]


def test_a_windows_1252_file_and_chosen_column_names_are_read():
    data = "Nomor Pesanan,Biaya Kirim,Catatan\nGK-1,12.500,Caf\xe9\n".encode("cp1252")
    rows, _ = statements.read_invoice(data, order_column="nomor pesanan",
                                      amount_column="Biaya Kirim")
    assert rows == [InvoiceRow(2, "GK-1", 12500, None)]


def test_bad_rows_are_reported_by_row_and_column_and_the_good_ones_kept():
    data = b"order_id,amount\nGK-1,15000\n,15000\nGK-3,15000.50\nGK-4,=1+1\n\nGK-5,7000\n"
    rows, problems = statements.read_invoice(data)
    assert [r.order_id for r in rows] == ["GK-1", "GK-5"]
    assert [(p["row"], p["column"]) for p in problems] == [
        (3, "order_id"), (4, "amount"), (5, "amount")]


@pytest.mark.parametrize("data, where", [
    (b"", "file"),
    (b"reference,notes\nx,y\n", "order_column"),
    (b"order_id,notes\nx,y\n", "amount_column"),
    (b"order_id,amount\n" + b"x,1\n" * (statements.MAX_INVOICE_ROWS + 1), "file"),
    (b"order_id,amount\n" + b"x" * statements.MAX_INVOICE_BYTES, "file"),
    (b"order_id,amount\n\x00\x00,1\n", "file"),
])
def test_a_file_that_cannot_be_read_is_refused_as_a_whole(data, where):
    with pytest.raises(InvoiceError) as refused:
        statements.read_invoice(data)
    assert refused.value.code == "invalid_invoice" and where in refused.value.fields


# -- matching ---------------------------------------------------------------------------------
def line(order: str, final: int | None, provider: str = "gosend_sandbox") -> Line:
    return Line(f"id-{order}", f"RX-{order}", datetime(2026, 3, 5, tzinfo=UTC), provider,
                order, 14000, final, "IDR", "delivered")


def test_reconciliation_finds_unknown_missing_differing_duplicate_and_matched_orders():
    sheet = Statement("a", "Puskesmas A", "medicine_delivery", "2026-03", "IDR", (
        line("GK-1", 15000), line("GK-2", 16000), line("GK-3", 17000), line("GK-4", None),
        line("LL-1", 9000, provider="lalamove")))
    rows = [InvoiceRow(2, "GK-1", 15000, None), InvoiceRow(3, "GK-2", 16500, None),
            InvoiceRow(4, "GK-9", 5000, None), InvoiceRow(5, "GK-4", 1000, None),
            InvoiceRow(6, "GK-1", 15000, None)]
    result = statements.reconcile(sheet, rows, provider="gosend_sandbox")
    found = {kind: [m.order_id for m in matches] for kind, matches in result.items()}
    assert found == {"unknown": ["GK-9"], "missing": ["GK-3"], "difference": ["GK-2", "GK-4"],
                     "duplicate": ["GK-1"], "matched": ["GK-1"]}
    assert [m.difference for m in result["difference"]] == [500, None]
    # another provider's lines are not this invoice's to miss
    assert "LL-1" not in found["missing"]


def test_the_reconciliation_file_keeps_a_formula_in_an_order_id_as_text():
    sheet = Statement("a", "A", "s", "2026-03", "IDR", (line("GK-1", 15000),))
    rows, _ = statements.read_invoice(b"order_id,amount\n=cmd|' /C calc'!A0,15000\n")
    written = csvexport.write(statements.RECONCILIATION_HEADER,
                              statements.reconciliation_rows(statements.reconcile(sheet, rows)))
    text = written.decode("utf-8-sig")
    assert "unknown,'=cmd|' /C calc'!A0" in text.replace('"', "")
    assert "\n=cmd" not in text and ",=cmd" not in text


def test_the_statement_file_keeps_a_formula_in_a_reference_as_text_and_totals_per_provider():
    sheet = Statement("a", "A", "s", "2026-03", "IDR", (
        Line("id-1", "=cmd|' /C calc'!A0", datetime(2026, 3, 31, 16, 30, tzinfo=UTC),
             "gosend_sandbox", "GK-1", 14000, 15000, "IDR", "delivered"),
        line("GK-2", None), line("LL-1", 9000, provider="lalamove")))
    rows = statements.statement_rows(region("Asia/Jakarta"), sheet)
    assert rows[0][0] == "2026-03-31 23:30 WIB"
    assert rows[-3:] == [
        ("total", None, None, "gosend_sandbox", "deliveries: 2", 28000, 15000, "IDR", None, 1),
        ("total", None, None, "lalamove", "deliveries: 1", 14000, 9000, "IDR", None, 0),
        ("total", None, None, None, "deliveries: 3", 42000, 24000, "IDR", None, 1)]
    text = csvexport.write(statements.STATEMENT_HEADER, rows).decode("utf-8-sig")
    assert ",'=cmd" in text.replace('"', "") and ",=cmd" not in text.replace('"', "")
