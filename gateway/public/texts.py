"""The public pages' words, in English (the keys) and Indonesian: a small catalogue of their
own, apart from the console's, so a citizen's page carries nothing of the console.

:func:`gettext` has gettext's shape (English text in, the reader's language out, ``%(name)s``
filled from keywords); a text missing here shows in English, and a test lists any missing.
"""

from __future__ import annotations

from flask import g

LANGUAGES = ("id", "en")

CATALOGUE: dict[str, str] = {
    "Track your request": "Lacak permintaan Anda",
    "Status": "Status",
    "History": "Riwayat",
    "Your courier": "Kurir Anda",
    "Plate": "Nomor polisi",
    "Estimated arrival": "Perkiraan tiba",
    "Sent by": "Dikirim oleh",
    "Phone": "Telepon",
    "How was the service? Fill in the short survey.":
        "Bagaimana layanan kami? Isi survei singkat.",
    "Times are in %(zone)s.": "Waktu dalam %(zone)s.",
    "Page not found": "Halaman tidak ditemukan",
    "This link is not valid or has expired.":
        "Tautan ini tidak berlaku atau sudah kedaluwarsa.",
    "Too many requests": "Terlalu banyak permintaan",
    "Sorry": "Mohon maaf",
    "Please wait a moment and try again.": "Mohon tunggu sebentar lalu coba lagi.",
    "Satisfaction survey": "Survei Kepuasan Masyarakat",
    "Your answers help us improve the service. Choose one answer for each question.":
        "Jawaban Anda membantu kami memperbaiki layanan. Pilih satu jawaban untuk setiap "
        "pertanyaan.",
    "Comment (optional)": "Saran atau komentar (tidak wajib)",
    "Complaint (optional)": "Pengaduan (tidak wajib)",
    "Do not write your name, address or medical details.":
        "Jangan menulis nama, alamat, atau keterangan medis Anda.",
    "Send": "Kirim",
    "Thank you": "Terima kasih",
    "Your answer has been recorded.": "Jawaban Anda sudah kami catat.",
    "This survey has already been answered.": "Survei ini sudah diisi.",
    "The survey opens once the delivery has been received.":
        "Survei dibuka setelah kiriman diterima.",
    "Please answer this question.": "Mohon jawab pertanyaan ini.",
    "Please choose one of the four answers.": "Mohon pilih salah satu dari empat jawaban.",
    "Some answers are missing or not valid; see the marked questions.":
        "Ada jawaban yang kosong atau tidak sah; lihat pertanyaan yang ditandai.",
    "At most %(count)s characters.": "Paling banyak %(count)s karakter.",
    "The form has expired. Please fill it in again.":
        "Formulir sudah kedaluwarsa. Mohon isi kembali.",
    "Back to tracking": "Kembali ke pelacakan",
    # statuses, as a citizen reads them
    "Received": "Diterima",
    "Finding a courier": "Mencari kurir",
    "Courier booked": "Kurir dipesan",
    "Courier assigned": "Kurir ditugaskan",
    "On the way to you": "Dalam perjalanan ke Anda",
    "Delivered": "Sudah diterima",
    "Returned to the sender": "Dikembalikan ke pengirim",
    "No courier found": "Tidak ada kurir",
    "Cancelled": "Dibatalkan",
    "Could not be delivered": "Gagal diantar",
}

#: each status of ``gateway.statuses.Status`` as the page names it
STATUS_LABELS = {
    "received": "Received",
    "dispatching": "Finding a courier",
    "outcome_unknown": "Finding a courier",
    "booked": "Courier booked",
    "driver_assigned": "Courier assigned",
    "picked_up": "On the way to you",
    "delivered": "Delivered",
    "returned": "Returned to the sender",
    "no_driver": "No courier found",
    "cancelled": "Cancelled",
    "failed": "Could not be delivered",
}


def language() -> str:
    return g.get("public_language") or "id"


def gettext(text: str, **values) -> str:
    """``text`` in the reader's language (plain text: templates escape it)."""
    translated = CATALOGUE.get(text, text) if language() == "id" else text
    return translated % values if values else translated


def status_label(status: str) -> str:
    return gettext(STATUS_LABELS.get(status, "Status"))
