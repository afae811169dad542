"""The reference for the extraction bench: what a user would otherwise pick in Python, timed on
the same files (best of 3). Prints {file name: {"seconds": s, "library": name}} as JSON.

`make DIR` first writes the Office files of the set with the same libraries (real packages, as
Word, PowerPoint and Excel write them: both sides read files neither wrote for itself)."""
import json
import sys
import time
from pathlib import Path


def pdf(path):
    from pypdf import PdfReader
    return "\n".join(page.extract_text() or "" for page in PdfReader(path).pages)


def docx(path):
    import docx as python_docx
    return "\n".join(p.text for p in python_docx.Document(path).paragraphs)


def pptx(path):
    from pptx import Presentation
    out = []
    for slide in Presentation(path).slides:
        for shape in slide.shapes:
            if shape.has_text_frame:
                out.append(shape.text_frame.text)
        if slide.has_notes_slide:
            out.append(slide.notes_slide.notes_text_frame.text)
    return "\n".join(out)


def xlsx(path):
    from openpyxl import load_workbook
    book = load_workbook(path, read_only=True)
    out = []
    for sheet in book.worksheets:
        for row in sheet.iter_rows(values_only=True):
            out.append(" | ".join("" if v is None else str(v) for v in row))
    return "\n".join(out)


READERS = {
    "set.pdf": (pdf, "pypdf"),
    "set.docx": (docx, "python-docx"),
    "set.pptx": (pptx, "python-pptx"),
    "set.xlsx": (xlsx, "openpyxl"),
}

def sentence(i):
    return (f"Step {i}: drain node {i % 97} and check that replica {i % 13} in zone {i % 5} "
            f"reports healthy within {30 + i % 60} seconds.")


def make(folder):
    import docx as python_docx
    from openpyxl import Workbook
    from pptx import Presentation
    from pptx.util import Inches

    document = python_docx.Document()
    for i in range(20_000):
        if i % 50 == 0:
            document.add_heading(sentence(i), level=2)
        else:
            document.add_paragraph(sentence(i))
    document.save(folder / "set.docx")

    deck = Presentation()
    for i in range(2_000):
        slide = deck.slides.add_slide(deck.slide_layouts[5])
        slide.shapes.title.text = sentence(i)
        box = slide.shapes.add_textbox(Inches(1), Inches(2), Inches(8), Inches(1))
        box.text_frame.text = sentence(i + 3)
        slide.notes_slide.notes_text_frame.text = sentence(i + 7)
    deck.save(folder / "set.pptx")

    book = Workbook(write_only=True)
    sheet = book.create_sheet("Inventory")
    for r in range(10_000):
        sheet.append([f"service-{r * 7919 % 100_003}", r * 104_729 % 1_000_003, f"owner {r % 389}",
                      (r % 1000) + (r * 31 % 100) / 100, f"region-{r % 17}"])
    book.save(folder / "set.xlsx")


if sys.argv[1] == "make":
    make(Path(sys.argv[2]))
    sys.exit(0)

results = {}
for name, (read, library) in READERS.items():
    path = Path(sys.argv[1]) / name
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        read(path)
        best = min(best, time.perf_counter() - started)
    results[name] = {"seconds": best, "library": library}
print(json.dumps(results))
