#!/usr/bin/env bash
# Attachment extraction side by side with Python's usual picks (pypdf, python-docx, python-pptx,
# openpyxl, installed into .cache/extract-venv from PyPI), in one run of the extract bench:
# throughput per type, what an unchanged attachment costs a re-crawl, and peak memory of a crawl
# with a 10 MiB PDF and a 10 MiB XLSX.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=.cache/extract-venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check pypdf==5.4.0 python-docx==1.1.2 python-pptx==1.0.2 openpyxl==3.1.5
fi
EXTRACT_REFERENCE="$PWD/$venv/bin/python" cargo bench -p docbrain-confluence --features simulator --bench extract
