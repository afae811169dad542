//! The MCP front door: the tools an assistant calls to read the index, with the caller's
//! permissions, over the pipeline's one search path; on stdio ([`serve_stdio`], the CLI's
//! `docbrain mcp`) or over HTTP ([`McpEndpoint`], `/mcp`).
//!
//! - `search_docs(query, k?, space?)`: hybrid search; hits with page id, title, space,
//!   breadcrumb, URL, score and text, as structured content and as readable text.
//! - `get_page(page_id)`: the page's indexed Markdown, with title, URL and version.
//! - `list_spaces()`: spaces with page and chunk counts and the last sync time.
//!
//! Whose permissions apply: over HTTP, the [`Caller`] the server put in the request's
//! extensions (from its key and `as`); otherwise (stdio) the caller the tools were built for.
//! Bad input is a tool error with a reason, never a protocol error. [`serve_stdio`] runs the
//! tools on stdin/stdout.

use std::fmt::Write as _;

use rmcp::handler::server::common::schema_for_output;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{
    CallToolResult, ContentBlock, Implementation, InitializeResult, ServerCapabilities,
    ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{tool, tool_handler, tool_router, ErrorData, RoleServer, ServerHandler, ServiceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use docbrain_core::{
    Caller, Error, ErrorKind, PageId, Pipeline, Result, SearchFilter, SearchRequest,
};

mod endpoint;

pub(crate) use endpoint::handle;
pub use endpoint::McpEndpoint;

/// Hits `search_docs` returns when `k` is not given.
pub const DEFAULT_K: usize = 5;
/// The most characters of a hit's text `search_docs` returns (longer text is cut, and says so).
pub const MAX_HIT_CHARS: usize = 2_000;
/// The most characters of a page `get_page` returns.
pub const MAX_PAGE_CHARS: usize = 60_000;

/// The DocBrain tools over one pipeline.
#[derive(Debug, Clone)]
pub struct DocsTools {
    pipeline: Pipeline,
    caller: Caller,
    tool_router: ToolRouter<Self>,
}

/// `search_docs` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct SearchArgs {
    /// The question or keywords, as a person would type them.
    pub query: String,
    /// How many hits to return, from 1 to 50 (default 5).
    pub k: Option<i64>,
    /// Only search this space (a key such as `ENG`; `list_spaces` names them).
    pub space: Option<String>,
}

/// `get_page` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct PageArgs {
    /// The page id, as a `search_docs` hit gives it.
    pub page_id: String,
    /// Also return the page's comments (default false).
    #[serde(default)]
    pub include_comments: bool,
}

/// One `search_docs` hit.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Hit {
    /// The Confluence page id (pass it to `get_page` for the whole page).
    pub page_id: String,
    /// The page title.
    pub title: String,
    /// The space key.
    pub space: String,
    /// The headings above the text, page title first: `Title > Heading > Subheading`.
    pub breadcrumb: String,
    /// A link to the page.
    pub url: Option<String>,
    /// Relevance (reciprocal rank fusion of keyword and semantic ranks; higher is better).
    pub score: f64,
    /// The chunk text, in Markdown.
    pub text: String,
    /// Whether `text` was cut at 2,000 characters.
    pub truncated: bool,
}

/// What `search_docs` returns.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SearchResults {
    /// Best first.
    pub hits: Vec<Hit>,
}

/// What `get_page` returns.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PageResult {
    /// The page id.
    pub page_id: String,
    /// The title.
    pub title: String,
    /// The space key.
    pub space: String,
    /// A link to the page.
    pub url: Option<String>,
    /// The version the index holds.
    pub version: u64,
    /// The page as indexed, in Markdown.
    pub markdown: String,
    /// Whether `markdown` was cut at 60,000 characters.
    pub truncated: bool,
    /// The page's comments, oldest first, when asked for (`include_comments`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub comments: Vec<PageComment>,
}

/// One comment of a page, as `get_page` returns it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct PageComment {
    /// The comment's id.
    pub id: String,
    /// `Comment by <author>`.
    pub title: String,
    /// A link to the page focused on the comment.
    pub url: Option<String>,
    /// The comment, in Markdown (an inline comment opens with the text it is anchored to,
    /// quoted).
    pub markdown: String,
}

/// One space of `list_spaces`.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Space {
    /// The space key (the `space` argument of `search_docs`).
    pub key: String,
    /// Pages of the space the caller may read.
    pub pages: u64,
    /// Their chunks.
    pub chunks: u64,
    /// When the last full sync completed, in milliseconds since the Unix epoch.
    pub last_sync_ms: Option<u64>,
}

/// What `list_spaces` returns.
#[derive(Debug, Serialize, JsonSchema)]
pub struct Spaces {
    /// By key.
    pub spaces: Vec<Space>,
}

#[tool_router]
impl DocsTools {
    /// Tools over `pipeline` answering as `caller` unless a request names another.
    pub fn new(pipeline: Pipeline, caller: Caller) -> Self {
        Self {
            pipeline,
            caller,
            tool_router: Self::tool_router(),
        }
    }

    /// The caller of one request: the one the HTTP front door put in its extensions, else the
    /// one these tools were built for.
    fn caller_of(&self, context: &RequestContext<RoleServer>) -> Caller {
        context
            .extensions
            .get::<http::request::Parts>()
            .and_then(|parts| parts.extensions.get::<Caller>())
            .unwrap_or(&self.caller)
            .clone()
    }

    #[tool(
        description = "Search the company's Confluence documentation (hybrid keyword and semantic search). \
            Returns the best passages with page id, title, space, breadcrumb, link, score and text; \
            only pages the caller may read. Quote the text and link the URL; call get_page for a whole page.",
        output_schema = schema_for_output::<SearchResults>()
    )]
    async fn search_docs(
        &self,
        Parameters(args): Parameters<SearchArgs>,
        context: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let k = match args.k {
            None => DEFAULT_K,
            Some(k) if (1..=SearchRequest::MAX_K as i64).contains(&k) => k as usize,
            Some(k) => {
                return Ok(tool_error(&format!(
                    "k must be from 1 to {} (got {k})",
                    SearchRequest::MAX_K
                )))
            }
        };
        let query = args.query.trim();
        if query.is_empty() {
            return Ok(tool_error("the query is empty: say what to search for"));
        }
        let filter = SearchFilter {
            space_key: args
                .space
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty()),
            caller: self.caller_of(&context),
        };
        let hits = match self.pipeline.search(query, k, &filter).await {
            Ok(hits) => hits,
            Err(e) => return answer_error(&e),
        };
        let results = SearchResults {
            hits: hits
                .into_iter()
                .map(|h| {
                    let (text, truncated) = cut(&h.text, MAX_HIT_CHARS);
                    Hit {
                        page_id: h.page_id.to_string(),
                        breadcrumb: h.heading_path.join(" > "),
                        title: h.title,
                        space: h.space_key,
                        url: h.url,
                        score: h.score,
                        text,
                        truncated,
                    }
                })
                .collect(),
        };
        let mut readable = String::new();
        if results.hits.is_empty() {
            readable.push_str("No results.");
        }
        for (i, hit) in results.hits.iter().enumerate() {
            let _ = writeln!(
                readable,
                "{}. {} [{}] (page {}, score {:.4})\n{}\n{}\n",
                i + 1,
                hit.breadcrumb,
                hit.space,
                hit.page_id,
                hit.score,
                hit.url.as_deref().unwrap_or("(no link)"),
                hit.text
            );
        }
        structured(&results, readable)
    }

    #[tool(
        description = "Read one documentation page as indexed, in Markdown, with its title, link and version. \
            Takes a page id from a search_docs hit; include_comments adds the page's comments.",
        output_schema = schema_for_output::<PageResult>()
    )]
    async fn get_page(
        &self,
        Parameters(args): Parameters<PageArgs>,
        context: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let id = args.page_id.trim();
        if id.is_empty() {
            return Ok(tool_error(
                "page_id is empty: pass the page_id of a search_docs hit",
            ));
        }
        let page = match self
            .pipeline
            .page_text(&PageId::new(id), &self.caller_of(&context))
            .await
        {
            Ok(Some(page)) => page,
            // Unknown and unreadable answer alike: the caller learns nothing of pages they
            // may not read.
            Ok(None) => {
                return Ok(tool_error(&format!(
                    "no page {id} in the index: use the page_id of a search_docs hit"
                )))
            }
            Err(e) => return answer_error(&e),
        };
        let (markdown, mut truncated) = cut(&page.markdown, MAX_PAGE_CHARS);
        let mut comments = Vec::new();
        if args.include_comments {
            let parts = match self
                .pipeline
                .page_parts(&page.page_id, &self.caller_of(&context))
                .await
            {
                Ok(parts) => parts,
                Err(e) => return answer_error(&e),
            };
            // The comments share the page's budget.
            let mut left = MAX_PAGE_CHARS.saturating_sub(markdown.chars().count());
            for part in parts {
                let (text, cut_short) = cut(&part.markdown, left);
                left = left.saturating_sub(text.chars().count());
                truncated |= cut_short;
                comments.push(PageComment {
                    id: part.page_id.to_string(),
                    title: part.title,
                    url: part.url,
                    markdown: text,
                });
                if left == 0 {
                    break;
                }
            }
        }
        let result = PageResult {
            page_id: page.page_id.to_string(),
            title: page.title,
            space: page.space_key,
            url: page.url,
            version: page.version,
            markdown,
            truncated,
            comments,
        };
        let mut readable = format!(
            "# {}\n\n{} (space {}, version {})\n\n{}",
            result.title,
            result.url.as_deref().unwrap_or("(no link)"),
            result.space,
            result.version,
            result.markdown
        );
        for comment in &result.comments {
            readable.push_str(&format!("\n\n## {}\n\n{}", comment.title, comment.markdown));
        }
        structured(&result, readable)
    }

    #[tool(
        description = "List the documentation spaces in the index the caller may read, with page and chunk \
            counts and when the index was last fully synced. Use a key as search_docs' space.",
        output_schema = schema_for_output::<Spaces>()
    )]
    async fn list_spaces(
        &self,
        context: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResult, ErrorData> {
        let spaces = match self.pipeline.spaces(&self.caller_of(&context)).await {
            Ok(spaces) => spaces,
            Err(e) => return answer_error(&e),
        };
        let result = Spaces {
            spaces: spaces
                .into_iter()
                .map(|s| Space {
                    key: s.key,
                    pages: s.pages,
                    chunks: s.chunks,
                    last_sync_ms: s.last_sync_ms,
                })
                .collect(),
        };
        let mut readable = String::new();
        if result.spaces.is_empty() {
            readable.push_str("No spaces.");
        }
        for s in &result.spaces {
            let _ = writeln!(
                readable,
                "{}: {} pages, {} chunks",
                s.key, s.pages, s.chunks
            );
        }
        structured(&result, readable)
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for DocsTools {
    fn get_info(&self) -> ServerConfig {
        InitializeResult::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("docbrain", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Search the organisation's Confluence documentation with search_docs, read a whole page \
                 with get_page, and see which spaces exist with list_spaces. Results only include \
                 pages the caller may read.",
            )
    }
}

/// A result with `value` as structured content and `readable` as its text.
fn structured<T: Serialize>(
    value: &T,
    readable: String,
) -> std::result::Result<CallToolResult, ErrorData> {
    let json = serde_json::to_value(value)
        .map_err(|e| ErrorData::internal_error(format!("cannot encode the result: {e}"), None))?;
    let mut result = CallToolResult::structured(json);
    result.content = vec![ContentBlock::text(readable)];
    Ok(result)
}

fn tool_error(reason: &str) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(reason.to_owned())])
}

/// A pipeline error as the caller should see it: their mistake (an unknown space, an empty
/// question) as a tool error with its reason; a failure of ours as a tool error that says so,
/// with the detail (addresses, causes) in the log only.
fn answer_error(e: &Error) -> std::result::Result<CallToolResult, ErrorData> {
    if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::InvalidRequest) {
        return Ok(tool_error(&e.to_string()));
    }
    warn!(error = %e, "an MCP tool call failed");
    Ok(tool_error(
        "the index could not answer (the server log says why)",
    ))
}

/// `text` cut to `max` characters, and whether it was.
fn cut(text: &str, max: usize) -> (String, bool) {
    match text.char_indices().nth(max) {
        Some((at, _)) => (text[..at].to_owned(), true),
        None => (text.to_owned(), false),
    }
}

/// Serves the tools on stdin/stdout until the client closes them.
///
/// # Errors
/// When the session cannot start or ends with a transport error.
pub async fn serve_stdio(pipeline: Pipeline, caller: Caller) -> Result<()> {
    let failed = |e: &dyn std::fmt::Display| {
        Error::new(
            ErrorKind::Transport,
            format!("the MCP session on stdio failed: {e}"),
        )
    };
    info!(caller = ?caller, "serving MCP on stdio");
    let service = DocsTools::new(pipeline, caller)
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| failed(&e))?;
    service.waiting().await.map_err(|e| failed(&e))?;
    Ok(())
}
