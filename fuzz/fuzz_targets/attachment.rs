//! Attachment extraction never panics in DocBrain's own readers (DOCX, PPTX, XLSX, XML, text)
//! and never hangs or runs away with memory on any type: the first byte picks the type, the
//! rest is the file. A panic inside the PDF library is caught here (in production the child
//! process contains it, and the file counts as failed); anything else is a finding.
#![no_main]

use docbrain_confluence::extract::{extract, FileType};
use libfuzzer_sys::fuzz_target;

const TYPES: [FileType; 7] = [
    FileType::Pdf,
    FileType::Docx,
    FileType::Pptx,
    FileType::Xlsx,
    FileType::Text,
    FileType::Html,
    FileType::Xml,
];

fuzz_target!(|data: &[u8]| {
    let Some((pick, file)) = data.split_first() else {
        return;
    };
    let kind = TYPES[usize::from(*pick) % TYPES.len()];
    let run = || extract(kind, file, 10_000);
    let text = if kind == FileType::Pdf {
        match std::panic::catch_unwind(run) {
            Ok(result) => result,
            Err(_) => return,
        }
    } else {
        run()
    };
    if let Ok(text) = text {
        assert!(text.chars().count() <= 10_000, "the character cap holds");
    }
});
