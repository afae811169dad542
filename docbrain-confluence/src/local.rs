//! The `local` source: a folder of pages, as DocBrain's `SOURCE_TYPE=local` reads them.
//!
//! Every `.md`, `.markdown` and `.txt` file below the folder is a page, and so is every `.xml`,
//! `.html` and `.htm` file, read as Confluence storage format (a space export) and converted to
//! Markdown. Hidden files and folders are skipped. A page's id is its path relative to the
//! folder, its title comes from a `title:` front-matter line (Markdown), else its first `# `
//! heading, else its file name; `labels:` in front matter become labels, and the folders above
//! it become its breadcrumb. Files carry no
//! version numbers, so the version is 0 and the content hash decides what changed.

use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;
use docbrain_core::{Fetched, Fetcher, Page, PageId, PageStream, PageSummary, Scope};
use futures::StreamExt;

use crate::error::SourceError;
use crate::storage_format::storage_to_markdown;

/// Reads pages from a folder.
#[derive(Debug, Clone)]
pub struct LocalFetcher {
    root: PathBuf,
    space_key: String,
}

const MARKDOWN: &[&str] = &["md", "markdown", "txt"];
const STORAGE_FORMAT: &[&str] = &["xml", "html", "htm"];

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
        })
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
                if path.is_dir() {
                    dirs.push(path);
                } else if is_page(&path) {
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
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(SourceError::Io { path, source }),
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
        let ancestors = id
            .as_str()
            .split('/')
            .rev()
            .skip(1)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .map(humanize)
            .collect();
        let url = std::fs::canonicalize(&path)
            .ok()
            .map(|p| format!("file://{}", p.display()));
        Ok(Some(Page {
            version: 0,
            url,
            ancestors,
            labels,
            ..Page::new(id.clone(), self.space_key.clone(), title, body.trim())
        }))
    }
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
                            Ok(PageSummary {
                                title: file_stem(&path),
                                id,
                                space_key: this.space_key.clone(),
                                version: None,
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
}
