//! A file's type, from its media type and its first bytes together.

use serde::{Deserialize, Serialize};

/// The types whose text is extracted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileType {
    /// PDF.
    Pdf,
    /// Word (Office Open XML).
    Docx,
    /// PowerPoint (Office Open XML).
    Pptx,
    /// Excel (Office Open XML).
    Xlsx,
    /// Plain text, Markdown, CSV, JSON.
    Text,
    /// HTML.
    Html,
    /// XML.
    Xml,
}

/// Why a file is not extracted (counted, never retried until it changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skip(pub String);

const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
const PPTX: &str = "application/vnd.openxmlformats-officedocument.presentationml.presentation";
const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

impl FileType {
    /// The type a file named `name` with media type `media_type` (as its source says) claims
    /// to be: its media type's, or, for a generic one (`application/octet-stream`, none), its
    /// extension's. [`super::extract`] then checks that the content agrees (magic bytes, text
    /// that reads as UTF-8).
    ///
    /// # Errors
    /// [`Skip`] naming an unsupported type.
    pub fn of(media_type: Option<&str>, name: &str) -> Result<Self, Skip> {
        let media = media_type
            .map(|m| {
                m.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            })
            .filter(|m| {
                !m.is_empty() && m != "application/octet-stream" && m != "binary/octet-stream"
            });
        let extension = name
            .rsplit_once('.')
            .map(|(_, e)| e.to_ascii_lowercase())
            .unwrap_or_default();
        let claimed = match media.as_deref() {
            Some("application/pdf") => Some(Self::Pdf),
            Some(DOCX) => Some(Self::Docx),
            Some(PPTX) => Some(Self::Pptx),
            Some(XLSX) => Some(Self::Xlsx),
            Some("text/html" | "application/xhtml+xml") => Some(Self::Html),
            Some("application/xml" | "text/xml") => Some(Self::Xml),
            Some("application/json") => Some(Self::Text),
            Some(m) if m.starts_with("text/") => Some(Self::Text),
            Some(_) => None,
            None => match extension.as_str() {
                "pdf" => Some(Self::Pdf),
                "docx" => Some(Self::Docx),
                "pptx" => Some(Self::Pptx),
                "xlsx" => Some(Self::Xlsx),
                "html" | "htm" => Some(Self::Html),
                "xml" => Some(Self::Xml),
                "txt" | "md" | "markdown" | "csv" | "json" | "log" => Some(Self::Text),
                _ => None,
            },
        };
        claimed.ok_or_else(|| {
            Skip(format!(
                "unsupported type {}",
                media.unwrap_or_else(|| format!(".{extension}"))
            ))
        })
    }

    /// Checks that content starting with `head` is of this type.
    pub(super) fn check(self, head: &[u8]) -> Result<(), super::ExtractError> {
        let office = matches!(self, Self::Docx | Self::Pptx | Self::Xlsx);
        if office && head.starts_with(b"\xD0\xCF\x11\xE0") {
            // A password-protected Office file is an OLE container holding the encrypted one.
            return Err(super::ExtractError::Encrypted(self.name().into()));
        }
        let agrees = match self {
            Self::Pdf => head.starts_with(b"%PDF-"),
            Self::Docx | Self::Pptx | Self::Xlsx => head.starts_with(b"PK\x03\x04"),
            Self::Text | Self::Html | Self::Xml => looks_like_text(head),
        };
        if agrees {
            Ok(())
        } else {
            Err(super::ExtractError::corrupt(
                self.name(),
                "the content is not of the type its media type or name says",
            ))
        }
    }

    /// The type's name for messages and counters (`pdf`, `docx`, …).
    pub fn name(self) -> &'static str {
        match self {
            Self::Pdf => "pdf",
            Self::Docx => "docx",
            Self::Pptx => "pptx",
            Self::Xlsx => "xlsx",
            Self::Text => "text",
            Self::Html => "html",
            Self::Xml => "xml",
        }
    }
}

/// Whether `head` reads as text: no NUL byte, and UTF-8 but for a sequence cut at its end.
fn looks_like_text(head: &[u8]) -> bool {
    if head.contains(&0) {
        return false;
    }
    match std::str::from_utf8(head) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none() && head.len() - e.valid_up_to() < 4,
    }
}
