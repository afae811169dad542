//! Text from attachments: PDF, Word (DOCX), PowerPoint (PPTX), Excel (XLSX) and text-like
//! files, in pure Rust.
//!
//! [`FileType::of`] decides a file's type from its media type or name; [`extract`] checks it
//! against the content (magic bytes, text that reads as UTF-8) and reads its text. Files come from anyone who can attach one, so the sources
//! ([`crate::ConfluenceClient`], [`crate::LocalFetcher`]) never extract in their own process:
//! [`Extractor`] runs [`extract`] in a child process of the same binary under a time and a
//! memory limit, so a panic, a hang, a crash or a hostile file (a zip bomb, a deeply nested
//! PDF) fails that one attachment and nothing else.

mod child;
mod detect;
mod office;

pub use child::{peak_rss_kib, serve_if_child, Extractor, CHILD_ENV};
pub use detect::{FileType, Skip};

/// Why a file's text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ExtractError {
    /// The file is not what its type says, or is damaged.
    #[error("the {kind} file cannot be read: {detail}")]
    Corrupt {
        /// The file type.
        kind: String,
        /// What is wrong.
        detail: String,
    },
    /// The file is password-protected.
    #[error("the {0} file is encrypted")]
    Encrypted(String),
    /// The file expands past the extractor's limits (a zip bomb, a huge sheet).
    #[error("the {0} file expands past the extraction limits")]
    TooLarge(String),
    /// The child process died, timed out or ran out of memory.
    #[error("the extractor {0}")]
    Crashed(String),
}

impl ExtractError {
    fn corrupt(kind: &str, detail: impl std::fmt::Display) -> Self {
        Self::Corrupt {
            kind: kind.to_owned(),
            detail: detail.to_string(),
        }
    }
}

/// Extracts the text of `bytes`, a file of type `kind` (checked against its first bytes), as
/// plain text with Markdown headings, cut at `max_chars` characters. Runs in the calling process: sources call it through [`Extractor`].
///
/// # Errors
/// [`ExtractError`] for damaged, encrypted or oversized files.
pub fn extract(kind: FileType, bytes: &[u8], max_chars: usize) -> Result<String, ExtractError> {
    kind.check(&bytes[..bytes.len().min(1024)])?;
    let text = match kind {
        FileType::Pdf => pdf(bytes)?,
        FileType::Docx => office::docx(bytes)?,
        FileType::Pptx => office::pptx(bytes)?,
        FileType::Xlsx => office::xlsx(bytes)?,
        FileType::Text => String::from_utf8_lossy(bytes).into_owned(),
        FileType::Html => crate::storage_to_markdown(&String::from_utf8_lossy(bytes)),
        FileType::Xml => office::xml_text(bytes)?,
    };
    Ok(cut(text.trim(), max_chars))
}

/// `text` cut at `max` characters.
fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => text[..at].to_owned(),
        None => text.to_owned(),
    }
}

/// The text of each page of a PDF, pages in order.
fn pdf(bytes: &[u8]) -> Result<String, ExtractError> {
    let doc = lopdf::Document::load_mem(bytes).map_err(|e| match e {
        lopdf::Error::Decryption(_) | lopdf::Error::InvalidPassword => {
            ExtractError::Encrypted("PDF".into())
        }
        other => ExtractError::corrupt("PDF", other),
    })?;
    if doc.is_encrypted() {
        return Err(ExtractError::Encrypted("PDF".into()));
    }
    let pages = doc.get_pages();
    if pages.is_empty() {
        return Err(ExtractError::corrupt("PDF", "no page can be read"));
    }
    let mut out = String::new();
    for number in pages.keys() {
        let text = doc
            .extract_text(&[*number])
            .map_err(|e| ExtractError::corrupt("PDF", e))?;
        out.push_str(text.trim());
        out.push_str("\n\n");
    }
    Ok(out)
}

#[cfg(test)]
pub(crate) mod tests;
