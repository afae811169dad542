//! Word, PowerPoint and Excel files (Office Open XML: XML parts in a zip), and plain XML.
//!
//! Every part is read through a budget: an entry whose declared or actual size passes it fails
//! the file (a zip bomb), and XML is read as a stream of events that never expands an entity
//! beyond XML's five and character references (no billion laughs).

use std::collections::HashMap;
use std::io::{Cursor, Read};

use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;

use super::ExtractError;

/// The most bytes one file's parts may expand to, all parts together (a 10 MiB workbook of
/// varied cells expands ten to twenty times).
const EXPANDED_BYTES: u64 = 256 * 1024 * 1024;
/// The most rows read from one sheet.
const SHEET_ROWS: usize = 10_000;

/// An Office file's parts, read within [`EXPANDED_BYTES`].
struct Parts<'a> {
    kind: &'static str,
    zip: zip::ZipArchive<Cursor<&'a [u8]>>,
    left: u64,
}

impl<'a> Parts<'a> {
    fn open(kind: &'static str, bytes: &'a [u8]) -> Result<Self, ExtractError> {
        let zip =
            zip::ZipArchive::new(Cursor::new(bytes)).map_err(|e| ExtractError::corrupt(kind, e))?;
        Ok(Self {
            kind,
            zip,
            left: EXPANDED_BYTES,
        })
    }

    /// The part `name`, or `None` when the file has none.
    fn read(&mut self, name: &str) -> Result<Option<Vec<u8>>, ExtractError> {
        let kind = self.kind;
        let mut entry = match self.zip.by_name(name) {
            Ok(entry) => entry,
            Err(zip::result::ZipError::FileNotFound) => return Ok(None),
            Err(zip::result::ZipError::UnsupportedArchive(why)) if why.contains("assword") => {
                return Err(ExtractError::Encrypted(kind.into()))
            }
            Err(e) => return Err(ExtractError::corrupt(kind, e)),
        };
        if entry.size() > self.left {
            return Err(ExtractError::TooLarge(kind.into()));
        }
        let mut out = Vec::new();
        // The declared size may lie: read one byte past what is left to know.
        (&mut entry)
            .take(self.left + 1)
            .read_to_end(&mut out)
            .map_err(|e| ExtractError::corrupt(kind, e))?;
        if out.len() as u64 > self.left {
            return Err(ExtractError::TooLarge(kind.into()));
        }
        self.left -= out.len() as u64;
        Ok(Some(out))
    }

    /// The part `name`, which the file must have.
    fn require(&mut self, name: &str) -> Result<Vec<u8>, ExtractError> {
        let kind = self.kind;
        self.read(name)?
            .ok_or_else(|| ExtractError::corrupt(kind, format!("no {name}")))
    }

    /// The targets of a relationships part by id (`rId1` → `slides/slide1.xml`).
    fn relationships(&mut self, name: &str) -> Result<HashMap<String, String>, ExtractError> {
        let mut targets = HashMap::new();
        let Some(xml) = self.read(name)? else {
            return Ok(targets);
        };
        walk(self.kind, &xml, |event| {
            if let XmlEvent::Open(e) | XmlEvent::Empty(e) = event {
                if local(e.name().as_ref()) == "Relationship" {
                    if let (Some(id), Some(target)) = (attr(e, "Id"), attr(e, "Target")) {
                        targets.insert(id, target);
                    }
                }
            }
        })?;
        Ok(targets)
    }
}

/// One event of an XML stream, text already unescaped.
enum XmlEvent<'e> {
    Open(&'e BytesStart<'e>),
    Empty(&'e BytesStart<'e>),
    Close(&'e str),
    Text(&'e str),
}

/// Hands every event of `xml` to `each`.
fn walk(
    kind: &'static str,
    xml: &[u8],
    mut each: impl FnMut(XmlEvent<'_>),
) -> Result<(), ExtractError> {
    let corrupt = |detail: String| ExtractError::corrupt(kind, detail);
    let mut reader = Reader::from_reader(xml);
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) => each(XmlEvent::Open(&e)),
            Ok(Event::Empty(e)) => each(XmlEvent::Empty(&e)),
            Ok(Event::End(e)) => each(XmlEvent::Close(local(e.name().as_ref()))),
            Ok(Event::Text(t)) => each(XmlEvent::Text(&t.into_inner())),
            Ok(Event::CData(t)) => each(XmlEvent::Text(&t.into_inner())),
            Ok(Event::GeneralRef(r)) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => Some(c),
                    _ => match r.as_ref() {
                        "amp" => Some('&'),
                        "lt" => Some('<'),
                        "gt" => Some('>'),
                        "quot" => Some('"'),
                        "apos" => Some('\''),
                        // Entities a document declares are never expanded.
                        _ => None,
                    },
                };
                if let Some(c) = resolved {
                    each(XmlEvent::Text(c.encode_utf8(&mut [0; 4])));
                }
            }
            Ok(Event::Eof) => return Ok(()),
            Ok(_) => {}
            Err(e) => return Err(corrupt(e.to_string())),
        }
        buf.clear();
    }
}

/// A name without its namespace prefix.
fn local(name: &str) -> &str {
    name.rsplit(':').next().unwrap_or(name)
}

/// The value of attribute `name` (prefix ignored).
fn attr(e: &BytesStart<'_>, name: &str) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| local(a.key.as_ref()) == name)
        .and_then(|a| {
            a.normalized_value(quick_xml::XmlVersion::default())
                .ok()
                .map(std::borrow::Cow::into_owned)
        })
}

/// The relationship an element points to (its namespaced `r:id`, beside any plain `id`).
fn rel_id(e: &BytesStart<'_>) -> Option<String> {
    e.attributes()
        .flatten()
        .find(|a| a.key.as_ref().contains(':') && local(a.key.as_ref()) == "id")
        .and_then(|a| {
            a.normalized_value(quick_xml::XmlVersion::default())
                .ok()
                .map(std::borrow::Cow::into_owned)
        })
}

/// A Word document: its paragraphs in order, headings marked as Markdown headings.
pub(super) fn docx(bytes: &[u8]) -> Result<String, ExtractError> {
    let mut parts = Parts::open("DOCX", bytes)?;
    let xml = parts.require("word/document.xml")?;
    let mut out = String::new();
    let mut paragraph = String::new();
    let mut heading = 0usize;
    let mut in_text = false;
    walk("DOCX", &xml, |event| match event {
        XmlEvent::Open(e) | XmlEvent::Empty(e) => match local(e.name().as_ref()) {
            "t" => in_text = matches!(event, XmlEvent::Open(_)),
            "tab" => paragraph.push('\t'),
            "br" | "cr" => paragraph.push('\n'),
            "pStyle" => {
                heading = attr(e, "val")
                    .and_then(|v| {
                        v.strip_prefix("Heading")
                            .or_else(|| v.strip_prefix("heading"))
                            .and_then(|n| n.trim().parse::<usize>().ok())
                    })
                    .map_or(0, |n| n.clamp(1, 6));
            }
            _ => {}
        },
        XmlEvent::Text(t) if in_text => paragraph.push_str(t),
        XmlEvent::Close("t") => in_text = false,
        XmlEvent::Close("p") => {
            let text = paragraph.trim();
            if !text.is_empty() {
                if heading > 0 {
                    out.push_str(&"#".repeat(heading));
                    out.push(' ');
                }
                out.push_str(text);
                out.push_str("\n\n");
            }
            paragraph.clear();
            heading = 0;
        }
        _ => {}
    })?;
    Ok(out)
}

/// The text runs of a DrawingML part (a slide, its notes), a line per paragraph, fields (slide
/// numbers, dates) left out.
fn drawing_text(kind: &'static str, xml: &[u8]) -> Result<String, ExtractError> {
    let mut out = String::new();
    let mut in_text = false;
    let mut in_field = false;
    walk(kind, xml, |event| match event {
        XmlEvent::Open(e) => match local(e.name().as_ref()) {
            "t" => in_text = true,
            "fld" => in_field = true,
            _ => {}
        },
        XmlEvent::Text(t) if in_text && !in_field => out.push_str(t),
        XmlEvent::Close("t") => in_text = false,
        XmlEvent::Close("fld") => in_field = false,
        XmlEvent::Close("p") if !out.is_empty() && !out.ends_with('\n') => out.push('\n'),
        _ => {}
    })?;
    Ok(out)
}

/// Resolves `target` (a relationship's) against the folder of the part holding it.
fn resolve(folder: &str, target: &str) -> String {
    let mut path: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        folder.split('/').filter(|s| !s.is_empty()).collect()
    };
    for segment in target.split('/').filter(|s| !s.is_empty()) {
        match segment {
            ".." => {
                path.pop();
            }
            "." => {}
            s => path.push(s),
        }
    }
    path.join("/")
}

/// A deck: each slide in the deck's order, its text then its speaker notes; layouts and
/// masters (their boilerplate) are never read.
pub(super) fn pptx(bytes: &[u8]) -> Result<String, ExtractError> {
    let mut parts = Parts::open("PPTX", bytes)?;
    let presentation = parts.require("ppt/presentation.xml")?;
    let rels = parts.relationships("ppt/_rels/presentation.xml.rels")?;
    let mut slides = Vec::new();
    walk("PPTX", &presentation, |event| {
        if let XmlEvent::Open(e) | XmlEvent::Empty(e) = event {
            if local(e.name().as_ref()) == "sldId" {
                if let Some(target) = rel_id(e).and_then(|id| rels.get(&id)) {
                    slides.push(resolve("ppt", target));
                }
            }
        }
    })?;
    let mut out = String::new();
    for (i, slide) in slides.iter().enumerate() {
        let Some(xml) = parts.read(slide)? else {
            continue;
        };
        let (folder, file) = slide.rsplit_once('/').unwrap_or(("", slide));
        let notes = parts
            .relationships(&format!("{folder}/_rels/{file}.rels"))?
            .into_values()
            .find(|t| t.contains("notesSlide"))
            .map(|t| resolve(folder, &t));
        out.push_str(&format!("## Slide {}\n\n", i + 1));
        out.push_str(drawing_text("PPTX", &xml)?.trim());
        out.push_str("\n\n");
        if let Some(notes) = notes {
            if let Some(xml) = parts.read(&notes)? {
                let text = drawing_text("PPTX", &xml)?;
                if !text.trim().is_empty() {
                    out.push_str("Notes: ");
                    out.push_str(text.trim());
                    out.push_str("\n\n");
                }
            }
        }
    }
    Ok(out)
}

/// A workbook: each sheet under its name, a line per row (cells joined with ` | `), at most
/// [`SHEET_ROWS`] rows a sheet.
pub(super) fn xlsx(bytes: &[u8]) -> Result<String, ExtractError> {
    let mut parts = Parts::open("XLSX", bytes)?;
    let workbook = parts.require("xl/workbook.xml")?;
    let rels = parts.relationships("xl/_rels/workbook.xml.rels")?;
    let shared = match parts.read("xl/sharedStrings.xml")? {
        Some(xml) => shared_strings(&xml)?,
        None => Vec::new(),
    };
    let mut sheets = Vec::new();
    walk("XLSX", &workbook, |event| {
        if let XmlEvent::Open(e) | XmlEvent::Empty(e) = event {
            if local(e.name().as_ref()) == "sheet" {
                let target = rel_id(e).and_then(|id| rels.get(&id).cloned());
                if let Some(target) = target {
                    sheets.push((attr(e, "name").unwrap_or_default(), resolve("xl", &target)));
                }
            }
        }
    })?;
    let mut out = String::new();
    for (name, path) in sheets {
        let Some(xml) = parts.read(&path)? else {
            continue;
        };
        out.push_str(&format!("## {name}\n\n"));
        out.push_str(&sheet_rows(&xml, &shared)?);
        out.push('\n');
    }
    Ok(out)
}

/// The shared strings of a workbook, in order.
fn shared_strings(xml: &[u8]) -> Result<Vec<String>, ExtractError> {
    let mut strings = Vec::new();
    let mut current = String::new();
    let mut in_text = false;
    walk("XLSX", xml, |event| match event {
        XmlEvent::Open(e) if local(e.name().as_ref()) == "t" => in_text = true,
        XmlEvent::Text(t) if in_text => current.push_str(t),
        XmlEvent::Close("t") => in_text = false,
        XmlEvent::Close("si") => strings.push(std::mem::take(&mut current)),
        _ => {}
    })?;
    Ok(strings)
}

/// A sheet's rows as text.
fn sheet_rows(xml: &[u8], shared: &[String]) -> Result<String, ExtractError> {
    let mut out = String::new();
    let mut row: Vec<String> = Vec::new();
    let mut rows = 0usize;
    let mut cell_type = String::new();
    let mut value = String::new();
    let mut in_value = false;
    walk("XLSX", xml, |event| {
        if rows >= SHEET_ROWS {
            return;
        }
        match event {
            XmlEvent::Open(e) => match local(e.name().as_ref()) {
                "c" => {
                    cell_type = attr(e, "t").unwrap_or_default();
                    value.clear();
                }
                "v" | "t" => in_value = true,
                _ => {}
            },
            XmlEvent::Text(t) if in_value => value.push_str(t),
            XmlEvent::Close("v" | "t") => in_value = false,
            XmlEvent::Close("c") => {
                let text = match cell_type.as_str() {
                    "s" => value
                        .trim()
                        .parse::<usize>()
                        .ok()
                        .and_then(|i| shared.get(i).cloned())
                        .unwrap_or_default(),
                    "b" => (if value.trim() == "1" { "TRUE" } else { "FALSE" }).to_owned(),
                    _ => value.trim().to_owned(),
                };
                row.push(text);
            }
            XmlEvent::Close("row") => {
                if row.iter().any(|c| !c.is_empty()) {
                    out.push_str(&row.join(" | "));
                    out.push('\n');
                }
                row.clear();
                rows += 1;
            }
            _ => {}
        }
    })?;
    Ok(out)
}

/// The text of an XML file, one line per run of text between tags.
pub(super) fn xml_text(bytes: &[u8]) -> Result<String, ExtractError> {
    let mut out = String::new();
    walk("XML", bytes, |event| {
        if let XmlEvent::Text(t) = event {
            let t = t.trim();
            if !t.is_empty() {
                out.push_str(t);
                out.push('\n');
            }
        }
    })?;
    Ok(out)
}
