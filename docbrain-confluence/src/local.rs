//! The `local` source: a folder of pages, as DocBrain's `SOURCE_TYPE=local` reads them.
//!
//! Every `.md`, `.markdown` and `.txt` file below the folder is a page, and so is every `.xml`,
//! `.html` and `.htm` file, read as Confluence storage format (a space export) and converted to
//! Markdown. Hidden files and folders are skipped. A page's id is its path relative to the
//! folder, its title comes from a `title:` front-matter line (Markdown), else its first `# `
//! heading, else its file name; `labels:` in front matter become labels, and the folders above
//! it become its breadcrumb. Files carry no
//! version numbers, so the version is 0 and the content hash decides what changed.
//!
//! With attachments on (`ATTACHMENTS`, the default), every `.pdf`, `.docx`, `.pptx`, `.xlsx`,
//! `.csv` and `.json` file is a page too, titled by its file name, its text extracted in a
//! child process ([`crate::extract::Extractor`]); its version is its modification time (ms),
//! so an unchanged file is never read again. Files over `ATTACHMENT_MAX_BYTES` are skipped
//! with one log line.

use std::path::{Component, Path, PathBuf};

use crate::settings::AttachmentSettings;
use async_trait::async_trait;
use docbrain_core::{Fetched, Fetcher, Page, PageId, PageStream, PageSummary, Scope};
use futures::StreamExt;

use crate::error::SourceError;
use crate::extract::{Extractor, FileType};
use crate::storage_format::storage_to_markdown;

/// Reads pages from a folder.
#[derive(Debug, Clone)]
pub struct LocalFetcher {
    root: PathBuf,
    space_key: String,
    attachments: AttachmentSettings,
    /// Runs extraction; `None`: this binary ([`Extractor::this_binary`]).
    extractor: Option<Extractor>,
}

const MARKDOWN: &[&str] = &["md", "markdown", "txt"];
const STORAGE_FORMAT: &[&str] = &["xml", "html", "htm"];
/// Files read as attachments: their text extracted.
const ATTACHMENTS: &[&str] = &["pdf", "docx", "pptx", "xlsx", "csv", "json"];

impl LocalFetcher {
    /// The space key used when none is configured.
    pub const DEFAULT_SPACE_KEY: &'static str = "LOCAL";

    /// Returns a fetcher over `root`, whose pages all belong to space `space_key`.
    ///
    /// # Errors
    /// [`SourceError::NotAFolder`] when `root` is not a readable folder.
    pub fn new(
        root: impl Into<PathBuf>,
        space_key: impl Into<String>,
    ) -> Result<Self, SourceError> {
        let root = root.into();
        if !root.is_dir() {
            return Err(SourceError::NotAFolder { path: root });
        }
        Ok(Self {
            root,
            space_key: space_key.into(),
            attachments: AttachmentSettings::default(),
            extractor: None,
        })
    }

    /// This fetcher reading attachment files as `settings` say (on by default, within its
    /// limits).
    pub fn with_attachments(mut self, settings: AttachmentSettings) -> Self {
        self.attachments = settings;
        self
    }

    /// This fetcher extracting attachments' text with `extractor` (by default this binary,
    /// whose `main` calls [`crate::extract::serve_if_child`]).
    pub fn with_extractor(mut self, extractor: Extractor) -> Self {
        self.extractor = Some(extractor);
        self
    }

    /// Whether `path` is a file read as an attachment.
    fn is_attachment(&self, path: &Path) -> bool {
        self.attachments.enabled && has_extension(path, ATTACHMENTS)
    }

    /// Returns the folder this fetcher reads.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, id: &PageId) -> Result<PathBuf, SourceError> {
        let rel = Path::new(id.as_str());
        let inside = rel.components().all(|c| matches!(c, Component::Normal(_)));
        if !inside || id.as_str().is_empty() {
            return Err(SourceError::BadId { id: id.to_string() });
        }
        Ok(self.root.join(rel))
    }

    fn walk(&self) -> Result<Vec<PathBuf>, SourceError> {
        let mut files = Vec::new();
        let mut dirs = vec![self.root.clone()];
        while let Some(dir) = dirs.pop() {
            let entries = std::fs::read_dir(&dir).map_err(|source| SourceError::Io {
                path: dir.clone(),
                source,
            })?;
            for entry in entries {
                let entry = entry.map_err(|source| SourceError::Io {
                    path: dir.clone(),
                    source,
                })?;
                let path = entry.path();
                if entry.file_name().to_string_lossy().starts_with('.') {
                    continue;
                }
                // Symbolic links are not followed: what is indexed is what lies in the folder
                // (a link to a secret elsewhere, or back up the tree, is skipped).
                let kind = entry.file_type().map_err(|source| SourceError::Io {
                    path: path.clone(),
                    source,
                })?;
                if kind.is_dir() {
                    dirs.push(path);
                } else if kind.is_file() && (is_page(&path) || self.is_attachment(&path)) {
                    files.push(path);
                }
            }
        }
        files.sort();
        Ok(files)
    }

    fn id_of(&self, path: &Path) -> PageId {
        let rel = path.strip_prefix(&self.root).unwrap_or(path);
        let parts: Vec<String> = rel
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        PageId::new(parts.join("/"))
    }

    fn read(&self, id: &PageId) -> Result<Option<Page>, SourceError> {
        let path = self.path_of(id)?;
        if !is_page(&path) {
            return Ok(None);
        }
        let Some(bytes) = read_regular(&path, PAGE_MAX_BYTES)? else {
            return Ok(None);
        };
        let text =
            String::from_utf8(bytes).map_err(|_| SourceError::NotText { path: path.clone() })?;
        let converted;
        let (front, body) = if has_extension(&path, STORAGE_FORMAT) {
            converted = storage_to_markdown(&text);
            (Vec::new(), converted.as_str())
        } else {
            front_matter(&text)
        };
        let title = front
            .iter()
            .find(|(k, _)| *k == "title")
            .map(|(_, v)| v.to_string())
            .or_else(|| first_heading(body))
            .unwrap_or_else(|| humanize(&file_stem(&path)));
        let labels = front
            .iter()
            .find(|(k, _)| *k == "labels")
            .map(|(_, v)| {
                v.split(',')
                    .map(|l| l.trim().to_string())
                    .filter(|l| !l.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        Ok(Some(Page {
            version: 0,
            url: file_url(&path),
            ancestors: breadcrumb(id),
            labels,
            ..Page::new(id.clone(), self.space_key.clone(), title, body.trim())
        }))
    }

    /// An attachment file as a page: titled by its file name, its text extracted in the
    /// child process. `None` when it is gone or over `ATTACHMENT_MAX_BYTES`.
    async fn read_attachment(&self, id: &PageId) -> Result<Option<Page>, SourceError> {
        let path = self.path_of(id)?;
        let Some(version) = modified_ms(&path) else {
            return Ok(None);
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let failed = |detail: String| SourceError::Attachment {
            name: name.clone(),
            detail,
        };
        let kind = FileType::of(None, &name).map_err(|skip| failed(skip.0))?;
        let max = self.attachments.max_bytes;
        let read = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || read_regular(&path, max))
                .await
                .map_err(SourceError::from)??
        };
        let Some(bytes) = read else {
            tracing::info!(path = %path.display(), "skipped {name}: not a regular file, or larger than ATTACHMENT_MAX_BYTES ({max} bytes)");
            return Ok(None);
        };
        let extractor = match &self.extractor {
            Some(extractor) => extractor.clone(),
            None => Extractor::this_binary().map_err(|e| failed(e.to_string()))?,
        }
        .with_limits(
            self.attachments.timeout,
            self.attachments.memory_mb.saturating_mul(1 << 20),
        );
        let text = extractor
            .extract(kind, &bytes, self.attachments.max_chars)
            .await
            .map_err(|e| failed(e.to_string()))?;
        Ok(Some(Page {
            version,
            url: file_url(&path),
            ancestors: breadcrumb(id),
            ..Page::new(id.clone(), self.space_key.clone(), name.clone(), text)
        }))
    }
}

/// The most bytes of one page file read: a larger one is skipped.
const PAGE_MAX_BYTES: u64 = 32 * 1024 * 1024;

/// The content of `path` when it is a regular file (not a link, a device or a pipe) of at most
/// `max` bytes; `None` when it is gone, not regular or larger.
fn read_regular(path: &Path, max: u64) -> Result<Option<Vec<u8>>, SourceError> {
    use std::io::Read;
    let io = |source| SourceError::Io {
        path: path.to_owned(),
        source,
    };
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(e)),
    };
    if !meta.is_file() || meta.len() > max {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(max + 1).read_to_end(&mut bytes))
        .map_err(io)?;
    Ok((bytes.len() as u64 <= max).then_some(bytes))
}

/// The folders above page `id`, humanized, root first.
fn breadcrumb(id: &PageId) -> Vec<String> {
    let mut folders: Vec<&str> = id.as_str().split('/').collect();
    folders.pop();
    folders.into_iter().map(humanize).collect()
}

/// A `file://` link to `path`.
fn file_url(path: &Path) -> Option<String> {
    std::fs::canonicalize(path)
        .ok()
        .map(|p| format!("file://{}", p.display()))
}

/// When `path` was last modified, in ms since the Unix epoch: an attachment file's version.
fn modified_ms(path: &Path) -> Option<u64> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    let ms = modified
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_millis();
    u64::try_from(ms).ok()
}

fn has_extension(path: &Path, extensions: &[&str]) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| extensions.contains(&e.to_ascii_lowercase().as_str()))
}

fn is_page(path: &Path) -> bool {
    has_extension(path, MARKDOWN) || has_extension(path, STORAGE_FORMAT)
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// Turns `incident-playbooks` into `Incident playbooks`.
fn humanize(name: &str) -> String {
    let spaced = name.replace(['-', '_'], " ");
    let mut chars = spaced.trim().chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Splits `---`-fenced `key: value` front matter from the body.
fn front_matter(text: &str) -> (Vec<(&str, &str)>, &str) {
    let Some(rest) = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
    else {
        return (Vec::new(), text);
    };
    let Some(end) = rest.find("\n---") else {
        return (Vec::new(), text);
    };
    let fields = rest[..end]
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim(), v.trim().trim_matches('"')))
        .collect();
    let after = &rest[end + 4..];
    let body = after.split_once('\n').map_or("", |(_, b)| b);
    (fields, body)
}

fn first_heading(body: &str) -> Option<String> {
    body.lines()
        .find_map(|l| l.strip_prefix("# "))
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

#[async_trait]
impl Fetcher for LocalFetcher {
    fn list<'a>(&'a self, scope: &'a Scope) -> PageStream<'a> {
        if !scope.spaces.is_empty() && !scope.spaces.contains(&self.space_key) {
            return futures::stream::empty().boxed();
        }
        let this = self.clone();
        let (root, space) = (self.root.clone(), self.space_key.clone());
        futures::stream::once(async move {
            let listed =
                tokio::task::spawn_blocking(move || -> Result<Vec<PageSummary>, SourceError> {
                    this.walk()?
                        .into_iter()
                        .map(|path| {
                            let id = this.id_of(&path);
                            // An attachment's version is its modification time: unchanged,
                            // it is never read again.
                            let version = if this.is_attachment(&path) {
                                modified_ms(&path)
                            } else {
                                None
                            };
                            Ok(PageSummary {
                                title: file_stem(&path),
                                id,
                                space_key: this.space_key.clone(),
                                version,
                                access: None,
                                parts: None,
                            })
                        })
                        .collect()
                })
                .await
                .map_err(SourceError::from)
                .and_then(|r| r);
            let items: Vec<docbrain_core::Result<PageSummary>> = match listed {
                Ok(pages) => {
                    tracing::info!(folder = %root.display(), space = %space, pages = pages.len(), "Fetching pages from {}... {} pages found", root.display(), pages.len());
                    pages.into_iter().map(Ok).collect()
                }
                Err(e) => vec![Err(e.into())],
            };
            futures::stream::iter(items)
        })
        .flatten()
        .boxed()
    }

    fn source_id(&self) -> String {
        let root = std::fs::canonicalize(&self.root).unwrap_or_else(|_| self.root.clone());
        format!("local:{}", root.display())
    }

    async fn fetch(&self, id: &PageId) -> docbrain_core::Result<Fetched> {
        if self.is_attachment(&self.path_of(id)?) {
            let page = self.read_attachment(id).await?;
            return Ok(page.map_or(Fetched::Gone, Fetched::Page));
        }
        let this = self.clone();
        let id = id.clone();
        let page = tokio::task::spawn_blocking(move || this.read(&id))
            .await
            .map_err(SourceError::from)??;
        Ok(page.map_or(Fetched::Gone, Fetched::Page))
    }
}

#[cfg(test)]
mod tests {
    use futures::TryStreamExt;

    use super::*;

    fn write(root: &Path, rel: &str, text: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    #[tokio::test]
    async fn lists_and_reads_pages() {
        let dir = tempfile::tempdir().unwrap();
        write(
            dir.path(),
            "runbooks/payments-restart.md",
            "# Restart payments\n\nRun it.",
        );
        write(
            dir.path(),
            "onboarding.md",
            "---\ntitle: Welcome aboard\nlabels: hr, onboarding\n---\n\nHello.",
        );
        write(dir.path(), "notes/todo.txt", "plain text page");
        write(dir.path(), ".hidden/secret.md", "# no");
        write(dir.path(), "image.png", "binary");
        write(dir.path(), "export/cache-runbook.xml", "<p>Use <code>redis-cli</code>.</p><ac:structured-macro ac:name=\"code\"><ac:parameter ac:name=\"language\">bash</ac:parameter><ac:plain-text-body><![CDATA[redis-cli INFO]]></ac:plain-text-body></ac:structured-macro>");
        let f = LocalFetcher::new(dir.path(), "ENG").unwrap();
        let listed: Vec<PageSummary> = f.list(&Scope::all()).try_collect().await.unwrap();
        let ids: Vec<&str> = listed.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "export/cache-runbook.xml",
                "notes/todo.txt",
                "onboarding.md",
                "runbooks/payments-restart.md"
            ]
        );
        assert!(listed
            .iter()
            .all(|p| p.space_key == "ENG" && p.version.is_none()));

        let Fetched::Page(p) = f
            .fetch(&"runbooks/payments-restart.md".into())
            .await
            .unwrap()
        else {
            panic!("page should exist");
        };
        assert_eq!(
            (p.title.as_str(), p.ancestors.as_slice()),
            ("Restart payments", &["Runbooks".to_string()][..])
        );
        assert!(p.url.as_deref().unwrap().starts_with("file:///"));
        let Fetched::Page(p) = f.fetch(&"onboarding.md".into()).await.unwrap() else {
            panic!()
        };
        assert_eq!(p.title, "Welcome aboard");
        assert_eq!(p.labels, ["hr", "onboarding"]);
        assert_eq!(p.body, "Hello.");
        let Fetched::Page(p) = f.fetch(&"notes/todo.txt".into()).await.unwrap() else {
            panic!()
        };
        assert_eq!(p.title, "Todo");

        let Fetched::Page(p) = f.fetch(&"export/cache-runbook.xml".into()).await.unwrap() else {
            panic!()
        };
        assert_eq!(p.title, "Cache runbook");
        assert_eq!(p.body, "Use `redis-cli`.\n\n```bash\nredis-cli INFO\n```");

        assert_eq!(f.fetch(&"gone.md".into()).await.unwrap(), Fetched::Gone);
        let other_space: Vec<PageSummary> =
            f.list(&Scope::spaces(["OPS"])).try_collect().await.unwrap();
        assert!(other_space.is_empty());
    }

    #[tokio::test]
    async fn refuses_paths_outside_the_folder_and_bad_text() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "bad.md", "");
        std::fs::write(dir.path().join("bad.md"), [0xff, 0xfe, 0x00]).unwrap();
        let f = LocalFetcher::new(dir.path(), "ENG").unwrap();
        let err = f.fetch(&"../etc/passwd.md".into()).await.unwrap_err();
        assert!(err.to_string().contains("not a path inside"), "{err}");
        let err = f.fetch(&"bad.md".into()).await.unwrap_err();
        assert!(err.to_string().contains("not UTF-8"), "{err}");
        let err = LocalFetcher::new(dir.path().join("missing"), "ENG").unwrap_err();
        assert!(err.to_string().contains("LOCAL_DOCS_PATH"), "{err}");
    }

    #[tokio::test]
    async fn attachment_files_are_pages_read_once_per_modification() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "runbooks/index.md", "# Runbooks");
        let handbook = crate::simulator::files::docx(&[(None, "The kestrel rota starts Monday.")]);
        std::fs::write(dir.path().join("runbooks/handbook.docx"), handbook).unwrap();
        std::fs::write(dir.path().join("runbooks/huge.pdf"), vec![b'%'; 4096]).unwrap();
        std::fs::write(dir.path().join("runbooks/logo.png"), b"png").unwrap();
        let fetcher = LocalFetcher::new(dir.path(), "DOCS")
            .unwrap()
            .with_attachments(AttachmentSettings {
                max_bytes: 1024,
                ..AttachmentSettings::default()
            })
            .with_extractor(crate::extract::tests::test_extractor());
        let listed: Vec<PageSummary> = fetcher.list(&Scope::all()).try_collect().await.unwrap();
        let ids: Vec<&str> = listed.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "runbooks/handbook.docx",
                "runbooks/huge.pdf",
                "runbooks/index.md"
            ]
        );
        // A file's version is its modification time: unchanged, it is not read again.
        assert!(listed[0].version.is_some_and(|v| v > 0) && listed[2].version.is_none());
        let Fetched::Page(page) = fetcher
            .fetch(&"runbooks/handbook.docx".into())
            .await
            .unwrap()
        else {
            panic!("the handbook is a page");
        };
        assert_eq!(
            (page.title.as_str(), page.body.as_str()),
            ("handbook.docx", "The kestrel rota starts Monday.")
        );
        assert_eq!(page.ancestors, ["Runbooks"]);
        assert_eq!(Some(page.version), listed[0].version);
        // Over ATTACHMENT_MAX_BYTES: skipped, never read.
        assert_eq!(
            fetcher.fetch(&"runbooks/huge.pdf".into()).await.unwrap(),
            Fetched::Gone
        );
        // Off: attachment files are not pages at all.
        let off = LocalFetcher::new(dir.path(), "DOCS")
            .unwrap()
            .with_attachments(AttachmentSettings {
                enabled: false,
                ..AttachmentSettings::default()
            });
        let listed: Vec<PageSummary> = off.list(&Scope::all()).try_collect().await.unwrap();
        assert_eq!(listed.len(), 1);
    }

    #[tokio::test]
    async fn links_out_of_the_folder_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        write(outside.path(), "secret.md", "# Secret\n\nthe vault key");
        write(dir.path(), "page.md", "# Page\n\nhello");
        std::os::unix::fs::symlink(outside.path().join("secret.md"), dir.path().join("link.md"))
            .unwrap();
        std::os::unix::fs::symlink(dir.path(), dir.path().join("loop")).unwrap();
        let fetcher = LocalFetcher::new(dir.path(), "DOCS").unwrap();
        let listed: Vec<PageSummary> = fetcher.list(&Scope::all()).try_collect().await.unwrap();
        let ids: Vec<&str> = listed.iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["page.md"]);
        assert_eq!(
            fetcher.fetch(&"link.md".into()).await.unwrap(),
            Fetched::Gone
        );
    }
}
