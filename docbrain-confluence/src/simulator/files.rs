//! Small files of each attachment type, built here (no captured file is copied): for the
//! simulator's attachments, the extractor's tests and the benchmarks.

use std::io::Write;

/// A zip of `(name, content)` entries, deflated.
pub fn zip_of(entries: &[(&str, &str)]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, content) in entries {
        zip.start_file(*name, options).expect("writing to memory");
        zip.write_all(content.as_bytes())
            .expect("writing to memory");
    }
    zip.finish().expect("writing to memory");
    out.into_inner()
}

/// The WordprocessingML namespace declaration.
pub const W: &str = r#"xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main""#;

/// A Word document of `(style, text)` paragraphs.
pub fn docx(paragraphs: &[(Option<&str>, &str)]) -> Vec<u8> {
    let body: String = paragraphs
        .iter()
        .map(|(style, text)| {
            let style = style
                .map(|s| format!(r#"<w:pPr><w:pStyle w:val="{s}"/></w:pPr>"#))
                .unwrap_or_default();
            format!(r#"<w:p>{style}<w:r><w:t xml:space="preserve">{text}</w:t></w:r></w:p>"#)
        })
        .collect();
    zip_of(&[(
        "word/document.xml",
        &format!(r#"<?xml version="1.0"?><w:document {W}><w:body>{body}</w:body></w:document>"#),
    )])
}

const A: &str = r#"xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships""#;

fn drawing(root: &str, paragraphs: &[&str]) -> String {
    let ps: String = paragraphs
        .iter()
        .map(|p| format!("<a:p><a:r><a:t>{p}</a:t></a:r></a:p>"))
        .collect();
    format!(
        r#"<p:{root} {A}><p:cSld><p:spTree><p:sp><p:txBody>{ps}<a:p><a:fld type="slidenum"><a:t>7</a:t></a:fld></a:p></p:txBody></p:sp></p:spTree></p:cSld></p:{root}>"#
    )
}

/// A deck of `(slide text, notes)`, its files numbered in reverse of the deck's order, with a
/// layout whose boilerplate must not show.
pub fn pptx(slides: &[(&str, Option<&str>)]) -> Vec<u8> {
    let n = slides.len();
    let mut files: Vec<(String, String)> = Vec::new();
    let mut ids = String::new();
    let mut rels = String::new();
    for (i, (text, notes)) in slides.iter().enumerate() {
        let file = n - i;
        ids.push_str(&format!(r#"<p:sldId id="{}" r:id="rId{file}"/>"#, 256 + i));
        rels.push_str(&format!(
            r#"<Relationship Id="rId{file}" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/slide" Target="slides/slide{file}.xml"/>"#
        ));
        files.push((
            format!("ppt/slides/slide{file}.xml"),
            drawing("sld", &[text]),
        ));
        let mut slide_rels = String::from(
            r#"<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/slideLayout" Target="../slideLayouts/slideLayout1.xml"/>"#,
        );
        if let Some(notes) = notes {
            slide_rels.push_str(&format!(
                r#"<Relationship Id="rId2" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/notesSlide" Target="../notesSlides/notesSlide{file}.xml"/>"#
            ));
            files.push((
                format!("ppt/notesSlides/notesSlide{file}.xml"),
                drawing("notes", &[notes]),
            ));
        }
        files.push((
            format!("ppt/slides/_rels/slide{file}.xml.rels"),
            format!(r#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{slide_rels}</Relationships>"#),
        ));
    }
    files.push((
        "ppt/presentation.xml".into(),
        format!(r#"<p:presentation {A}><p:sldIdLst>{ids}</p:sldIdLst></p:presentation>"#),
    ));
    files.push((
        "ppt/_rels/presentation.xml.rels".into(),
        format!(r#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{rels}</Relationships>"#),
    ));
    files.push((
        "ppt/slideLayouts/slideLayout1.xml".into(),
        drawing("sldLayout", &["Click to edit Master title style"]),
    ));
    let entries: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    zip_of(&entries)
}

/// A workbook of `(sheet name, rows)`; strings go through the shared table, numbers inline.
pub fn xlsx(sheets: &[(&str, Vec<Vec<&str>>)]) -> Vec<u8> {
    let mut shared: Vec<String> = Vec::new();
    let mut files: Vec<(String, String)> = Vec::new();
    let mut list = String::new();
    let mut rels = String::new();
    for (i, (name, rows)) in sheets.iter().enumerate() {
        let n = i + 1;
        list.push_str(&format!(
            r#"<sheet name="{name}" sheetId="{n}" r:id="rId{n}"/>"#
        ));
        rels.push_str(&format!(
            r#"<Relationship Id="rId{n}" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" Target="worksheets/sheet{n}.xml"/>"#
        ));
        let mut data = String::new();
        for row in rows {
            data.push_str("<row>");
            for cell in row {
                if cell.parse::<f64>().is_ok() {
                    data.push_str(&format!("<c><v>{cell}</v></c>"));
                } else {
                    shared.push((*cell).to_owned());
                    data.push_str(&format!(r#"<c t="s"><v>{}</v></c>"#, shared.len() - 1));
                }
            }
            data.push_str("</row>");
        }
        files.push((
            format!("xl/worksheets/sheet{n}.xml"),
            format!(r#"<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>{data}</sheetData></worksheet>"#),
        ));
    }
    let strings: String = shared
        .iter()
        .map(|s| format!("<si><t>{s}</t></si>"))
        .collect();
    files.push((
        "xl/sharedStrings.xml".into(),
        format!(r#"<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">{strings}</sst>"#),
    ));
    files.push((
        "xl/workbook.xml".into(),
        format!(r#"<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships"><sheets>{list}</sheets></workbook>"#),
    ));
    files.push((
        "xl/_rels/workbook.xml.rels".into(),
        format!(r#"<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">{rels}</Relationships>"#),
    ));
    let entries: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    zip_of(&entries)
}

/// A PDF with one page per text, in Helvetica.
pub fn pdf(pages: &[&str]) -> Vec<u8> {
    use lopdf::content::{Content, Operation};
    use lopdf::{dictionary, Document, Object, Stream};
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica",
    });
    let resources = doc.add_object(dictionary! {
        "Font" => dictionary! { "F1" => font },
    });
    let mut kids: Vec<Object> = Vec::new();
    for text in pages {
        let content = Content {
            operations: vec![
                Operation::new("BT", vec![]),
                Operation::new("Tf", vec!["F1".into(), 12.into()]),
                Operation::new("Td", vec![72.into(), 720.into()]),
                Operation::new("Tj", vec![Object::string_literal(*text)]),
                Operation::new("ET", vec![]),
            ],
        };
        let stream = doc.add_object(Stream::new(
            dictionary! {},
            content.encode().expect("a valid content stream"),
        ));
        let page = doc.add_object(dictionary! {
            "Type" => "Page", "Parent" => pages_id, "Contents" => stream,
        });
        kids.push(page.into());
    }
    let count = kids.len() as i64;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => kids, "Count" => count,
            "Resources" => resources, "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
        }),
    );
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog);
    let mut out = Vec::new();
    doc.save_to(&mut out).expect("writing to memory");
    out
}

/// A DOCX whose document part expands to `mib` MiB of spaces.
pub fn bomb(mib: usize) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut out);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    zip.start_file("word/document.xml", options)
        .expect("writing to memory");
    let spaces = vec![b' '; 1 << 20];
    for _ in 0..mib {
        zip.write_all(&spaces).expect("writing to memory");
    }
    zip.finish().expect("writing to memory");
    out.into_inner()
}

/// A file an attacker might attach.
#[derive(Debug, Clone)]
pub struct Hostile {
    /// What it is.
    pub what: &'static str,
    /// Its file name.
    pub file_name: &'static str,
    /// The media type it claims.
    pub media_type: &'static str,
    /// Its bytes.
    pub content: Vec<u8>,
}

/// Files that must each fail on their own: a truncated PDF, a zip bomb (300 MiB expanded), a
/// PDF nested 5,000 deep, an encrypted DOCX, and garbage bytes claiming to be a workbook.
pub fn hostile() -> Vec<Hostile> {
    let truncated = {
        let full = pdf(&["cut short"]);
        full[..full.len() / 3].to_vec()
    };
    let nested = {
        let mut body = b"%PDF-1.5\n1 0 obj\n".to_vec();
        body.extend(std::iter::repeat_n(b'[', 5_000));
        body.extend(std::iter::repeat_n(b']', 5_000));
        body.extend(b"\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n");
        body
    };
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let hostile = |what, file_name, media_type, content| Hostile {
        what,
        file_name,
        media_type,
        content,
    };
    const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
    vec![
        hostile(
            "truncated PDF",
            "truncated.pdf",
            "application/pdf",
            truncated,
        ),
        hostile("zip bomb", "bomb.docx", DOCX, bomb(300)),
        hostile(
            "5,000-level nesting",
            "nested.pdf",
            "application/pdf",
            nested,
        ),
        hostile(
            "encrypted DOCX",
            "encrypted.docx",
            DOCX,
            b"\xD0\xCF\x11\xE0\xA1\xB1\x1A\xE1 an OLE container".to_vec(),
        ),
        hostile(
            "garbage bytes",
            "garbage.xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            garbage,
        ),
    ]
}
